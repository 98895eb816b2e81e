"""Storage files: a study file writes only to storages, journals stay readable, refusals are one line.

Every check runs the real ``normx`` command on real files (issue 13: items 3, 7, 10, 12, 14, 17).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState
from tiny_study import tiny_study

STUDY = """\
name = "safety"
models = ["mlp(depth=2, width=16)"]
n_trials = {n}
[objectives]
cosine_similarity = "minimize"
[data]
name = "gaussian"
train_limit = 64
test_limit = 32
[space]
presets = ["bn", "ln", "rms"]
[screening]
batch_size = 32
batches = 1
reject_variance_growth = []
[training]
steps = 0
"""


@pytest.fixture
def study_file(tmp_path):
    def write(n: int = 2):
        path = tmp_path / "safety.toml"
        path.write_text(STUDY.format(n=n))
        return path

    return write


def run(normx_exe, *args, timeout=180):
    command = [*normx_exe, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def one_line_error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("normx: error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_a_study_file_never_writes_into_a_file_that_is_not_a_storage(tmp_path, study_file, normx_exe, kind):
    profile = tmp_path / ".profile"
    profile.write_text("export PATH=$HOME/bin:$PATH\n")
    before = profile.read_bytes()
    url = f"journal:{profile}" if kind == "journal" else f"sqlite:///{profile}"
    line = one_line_error(run(normx_exe, "study", "run", study_file(), "--storage", url), str(profile))
    assert ("an Optuna journal" if kind == "journal" else "an SQLite database") in line
    assert profile.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".profile", "safety.toml"]


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_a_new_storage_is_created_only_under_a_storage_name(tmp_path, study_file, normx_exe, kind):
    target = tmp_path / "notes.txt"
    url = f"journal:{target}" if kind == "journal" else f"sqlite:///{target}"
    one_line_error(run(normx_exe, "study", "run", study_file(), "--storage", url), "created only under a name")
    assert not target.exists()


def test_a_journal_cut_off_mid_write_is_repaired_with_a_backup(tmp_path, study_file, normx_exe):
    journal = tmp_path / "runs.journal"
    first = run(normx_exe, "study", "run", study_file(2), "--storage", journal)
    assert first.returncode == 0, first.stderr
    intact = journal.read_bytes()
    with open(journal, "ab") as handle:  # a crash in the middle of a write
        handle.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 9, "us')
    second = run(normx_exe, "study", "run", study_file(3), "--storage", journal)
    assert second.returncode == 0, second.stderr
    assert "cut off mid-write" in second.stderr and "Traceback" not in second.stderr
    backups = list(tmp_path.glob("runs.journal.normx-backup-*"))
    assert len(backups) == 1 and backups[0].read_bytes().startswith(intact)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    finished = optuna.load_study(study_name="safety", storage=storage).get_trials(states=(TrialState.COMPLETE,))
    assert len(finished) == 3
    listed = run(normx_exe, "study", "list", "--storage", journal)
    assert listed.returncode == 0 and "safety" in listed.stdout


def test_a_journal_with_a_garbage_line_names_the_line_and_is_never_appended_to(tmp_path, study_file, normx_exe):
    journal = tmp_path / "runs.journal"
    assert run(normx_exe, "study", "run", study_file(1), "--storage", journal).returncode == 0
    lines = journal.read_bytes().splitlines(keepends=True)
    damaged = b"".join([lines[0], b"this is not json\n", *lines[1:]])
    journal.write_bytes(damaged)
    one_line_error(run(normx_exe, "report", "safety", "--storage", journal), "line 2: not JSON")
    one_line_error(run(normx_exe, "study", "run", study_file(2), "--storage", journal), "line 2: not JSON",
                   "will not append")
    assert journal.read_bytes() == damaged


def _without_root_override() -> list[str]:
    """Root writes read-only files anyway: run the command without the capabilities that let it
    (setpriv), so that it meets the file modes as any user does."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.fail("running as root needs setpriv (util-linux) to test read-only storages")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_a_read_only_storage_is_one_line(tmp_path, study_file, normx_exe, kind):
    target = tmp_path / ("runs.journal" if kind == "journal" else "runs.db")
    path = study_file(1)
    assert run(normx_exe, "study", "run", path, "--storage", target).returncode == 0
    before = target.read_bytes()
    target.chmod(0o444)
    tmp_path.chmod(0o555)
    prefix = _without_root_override()
    try:
        result = subprocess.run([*prefix, *normx_exe, "study", "run", str(path), "--storage", str(target),
                                 "--n-trials", "2"], capture_output=True, text=True, timeout=180)
        one_line_error(result, "read-only")
        assert target.read_bytes() == before
        readable = subprocess.run([*prefix, *normx_exe, "study", "list", "--storage", str(target)],
                                  capture_output=True, text=True, timeout=120)
        assert readable.returncode == 0 and "safety" in readable.stdout, readable.stderr
    finally:
        tmp_path.chmod(0o755)
        target.chmod(0o644)


def test_a_password_in_the_query_string_is_never_printed(tmp_path, study_file, normx_exe):
    url = "postgresql://normx@127.0.0.1:9/nodb?password=hunter2-secret&sslmode=disable"
    result = run(normx_exe, "study", "run", study_file(), "--storage", url)
    one_line_error(result, "password=***")
    assert "hunter2-secret" not in result.stdout + result.stderr


def test_a_password_holding_an_at_sign_is_refused_before_the_driver_sees_it(study_file, normx_exe):
    result = run(normx_exe, "study", "run", study_file(), "--storage", "postgresql://normx:pa@ss@127.0.0.1:9/db")
    line = one_line_error(result, "%40")
    assert "ss@" not in line and "pa@" not in line


@pytest.mark.postgres
def test_real_postgres_errors_leak_no_password(study_file, normx_exe, postgres_url):
    url = postgres_url
    head, rest = url.split("://", 1)
    user_host = rest.split("@", 1)[1]
    user = rest.split(":", 1)[0]
    wrong = f"{head}://{user}@{user_host}?password=wrong-pass-xyz"
    result = run(normx_exe, "study", "run", study_file(), "--storage", wrong)
    one_line_error(result, "cannot open storage")
    assert "wrong-pass-xyz" not in result.stdout + result.stderr


FULL_STUDY = tiny_study("full", n=2, space='fixed = "affine | relu"\n[space.slots]\ncenter = ["none", "mean"]\n'
                                             'scale = ["std", "root_mean_square"]')

#: Free space left on the small file system (or above the file-size limit) for the run that fills it.
HEADROOM = 48 * 1024


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (as root, where mounting is allowed), else the real file-size limit
    RLIMIT_FSIZE as the equivalent: either way the kernel refuses the storage's writes."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = (os.geteuid() == 0 and shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True).returncode == 0)
    yield mount_point, mounted
    if mounted:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(mount_point, mounted, storage):
    """Leave HEADROOM bytes: a filler file on the tmpfs, or a file-size limit for the child."""
    if mounted:
        stat = os.statvfs(mount_point)
        free = stat.f_bavail * stat.f_frsize
        with open(mount_point / "filler", "wb") as handle:
            handle.write(b"\0" * max(0, free - HEADROOM))
        return None
    import resource

    limit = os.path.getsize(storage) + HEADROOM
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _states(storage):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if str(storage).endswith(".journal"):
        backend = optuna.storages.journal.JournalFileBackend(str(storage))
        opened = optuna.storages.JournalStorage(backend)
    else:
        opened = optuna.storages.RDBStorage(f"sqlite:///{storage}")
    return optuna.load_study(study_name="full", storage=opened).get_trials(deepcopy=False)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_full_disk_stops_the_study_at_once_and_fails_no_trial(tmp_path, small_disk, normx_exe, kind):
    """Item 8: a full disk recorded 29 trials as failed (using the budget), then a traceback."""
    mount_point, mounted = small_disk
    study = tmp_path / "full.toml"
    study.write_text(FULL_STUDY)
    storage = mount_point / ("runs.journal" if kind == "journal" else "runs.db")
    assert run(normx_exe, "study", "run", study, "--storage", storage).returncode == 0
    limit = _fill(mount_point, mounted, storage)
    command = [*normx_exe, "study", "run", str(study), "--storage", str(storage), "--n-trials", "400"]
    full = subprocess.run(command, capture_output=True, text=True, timeout=600, preexec_fn=limit)
    line = one_line_error(full, "storage full", "no trial was recorded as failed")
    assert str(storage) in line
    trials = _states(storage)
    assert not [t for t in trials if t.user_attrs.get("stage") == "failed"]
    assert len(trials) < 400
    if mounted:
        (mount_point / "filler").unlink()
    budget = _distinct_results(trials) + 3
    resumed = run(normx_exe, "study", "run", study, "--storage", storage, "--n-trials", budget)
    assert resumed.returncode == 0, resumed.stderr
    trials = _states(storage)
    assert _distinct_results(trials) == budget  # the budget counts distinct compositions, repeats take no place
    assert not [t for t in trials if t.state == TrialState.RUNNING or t.user_attrs.get("stage") == "failed"]


def _distinct_results(trials) -> int:
    """Complete and pruned trials that are not repeats of an earlier composition."""
    return len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                and "reused_from" not in t.user_attrs])


def _postgres_url(url: str):
    """(driver head, user, password, host/db) of the session's PostgreSQL URL (conftest's postgres_url)."""
    head, rest = url.split("://", 1)
    credentials, host_db = rest.split("@", 1)
    user, password = credentials.split(":", 1)
    return head, user, password, host_db


def _study_attr(url, name, key):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=url).user_attrs[key]


@pytest.mark.postgres
def test_a_password_in_the_query_string_is_masked_on_a_real_server(tmp_path, normx_exe, postgres_url):
    """Items 10 and 11: a working ``?password=`` URL is masked in the creation line and every
    status line, and the study file stored in the study keeps no password (its storage key had one)."""
    head, user, password, host_db = _postgres_url(postgres_url)
    name = f"pw-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    study = tmp_path / "pw.toml"
    study.write_text(STUDY.format(n=1).replace('name = "safety"', f'name = "{name}"\n'
                                              f'storage = "{head}://{user}:{password}@{host_db}"'))
    url = f"{head}://{user}@{host_db}?password={password}"
    result = run(normx_exe, "study", "run", study, "--storage", url)
    assert result.returncode == 0, result.stderr
    assert "password=***" in result.stdout
    assert password not in result.stdout + result.stderr
    stored = _study_attr(f"{head}://{user}:{password}@{host_db}", name, "study_file")
    assert password not in stored and f"{user}:***@" in stored


def test_the_stored_study_file_keeps_no_password_when_storage_points_elsewhere(tmp_path, normx_exe, postgres_url):
    """Item 11: the ``study_file`` attribute is readable by anyone who reads the study."""
    study = tmp_path / "pw.toml"
    study.write_text(STUDY.format(n=1).replace('name = "safety"', 'name = "safety"\n'
                                              'storage = "postgresql://me:s3cret-Pass@db.example/normx"'))
    target = tmp_path / "here.db"
    assert run(normx_exe, "study", "run", study, "--storage", target).returncode == 0
    stored = _study_attr(f"sqlite:///{target}", "safety", "study_file")
    assert "s3cret-Pass" not in stored and "postgresql://me:***@db.example/normx" in stored


@pytest.mark.postgres
def test_a_password_with_an_at_sign_on_a_real_server(tmp_path, study_file, normx_exe, postgres_url):
    """Item 12: '@' in a password is refused before the driver could print a fragment of it as a
    host name; percent-encoded, the same kind of URL reaches the real server."""
    head, user, password, host_db = _postgres_url(postgres_url)
    wrong = f"{head}://{user}:{password}@x@{host_db}"
    result = run(normx_exe, "study", "run", study_file(1), "--storage", wrong)
    line = one_line_error(result, "%40")
    assert password not in result.stdout + result.stderr and "x@" not in line
    encoded = "".join(f"%{ord(c):02X}" if not c.isalnum() else c for c in password)
    ok = run(normx_exe, "study", "list", "--storage", f"{head}://{user}:{encoded}@{host_db}")
    assert ok.returncode == 0, ok.stderr
    assert password not in ok.stdout + ok.stderr
