"""Commands that write files, when the system refuses the write or the arguments make no sense
(issue 24, item 16): one line, a non-zero exit, and nothing left behind — no temporary file, no
half set of figures, no directory the command created.

The full disk is real: a small tmpfs mounted for the test (as root, where mounting is allowed),
else the file-size limit ``RLIMIT_FSIZE`` set in the child process, which the kernel enforces with
``EFBIG``. No write call is patched.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from test_tui_model import write_study


@pytest.fixture
def tiny_disk(tmp_path):
    """(directory, how to run a child so that its writes fail): a 64 KiB tmpfs with ``room`` bytes
    left, or the file-size limit as its equivalent."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = (os.geteuid() == 0 and shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)], capture_output=True).returncode == 0)

    def limit(room: int):
        if mounted:
            stat = os.statvfs(mount_point)
            with open(mount_point / ".filler", "wb") as handle:
                handle.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - room))
            return None
        import resource

        return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (room, room))

    yield mount_point, limit
    if mounted:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def left(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != ".filler")


def one_line(result, *fragments) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("normx: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


FULL = ("No space left on device", "File too large")


@pytest.fixture(scope="module")
def study_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('full') / 'study.db'}"
    write_study(url, n=30, running=1)
    return url


def test_report_plots_on_a_full_disk_is_one_line_and_leaves_nothing(tiny_disk, study_url, normx_exe):
    """Before: a 46-line PIL traceback, a ``.tmp`` file left in the directory, no report."""
    disk, limit = tiny_disk
    for existing in (False, True):
        figures = disk / "figures"
        if existing:
            figures.mkdir()
        result = subprocess.run([*normx_exe, "report", "demo", "--storage", study_url, "--plots", str(figures)],
                                capture_output=True, text=True, timeout=300, preexec_fn=limit(16 * 1024))
        line = one_line(result, f"cannot write the figures to {figures}: ", "; nothing was left behind")
        assert any(reason in line for reason in FULL), line
        # the directory the command made is gone again; one that was there stays, empty
        assert left(disk) == (["figures"] if existing else [])
        if existing:
            assert left(figures) == [] and not any(figures.iterdir())


def test_report_output_on_a_full_disk_is_one_line_and_leaves_nothing(tiny_disk, study_url, normx_exe):
    disk, limit = tiny_disk
    output = disk / "report.txt"
    result = subprocess.run([*normx_exe, "report", "demo", "--storage", study_url, "--output", str(output)],
                            capture_output=True, text=True, timeout=300, preexec_fn=limit(512))
    line = one_line(result, f"cannot write {output}: ")
    assert any(reason in line for reason in FULL), line
    assert left(disk) == []


def test_reproduce_results_on_a_full_disk_are_one_line_and_leave_nothing(tiny_disk, normx_exe):
    disk, limit = tiny_disk
    out = disk / "runs" / "claim3"
    result = subprocess.run([*normx_exe, "reproduce", "claim3", "--small", "--out", str(out)],
                            capture_output=True, text=True, timeout=600, preexec_fn=limit(512))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()  # the progress lines, then the error
    assert lines[-1].startswith(f"normx: error: cannot write the results to {out}: ") and "Traceback" not in result.stderr
    assert any(reason in lines[-1] for reason in FULL), lines[-1]
    assert left(disk) == []


@pytest.mark.parametrize("args, message", [
    (["report", "demo", "--plots", ""], "argument --plots: empty path: give a directory or omit the option"),
    (["report", "demo", "--output", ""], "argument --output/-o: empty path: give a file or omit the option"),
    (["reproduce", "claim3", "--out", ""], "argument --out: empty path: give a directory or omit the option"),
])
def test_an_empty_path_is_refused_not_ignored(tmp_path, normx_exe, args, message):
    """``--plots ''`` was silently ignored; ``reproduce --out ''`` wrote into the current directory."""
    result = subprocess.run([*normx_exe, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert one_line(result).startswith(f"normx: error: {message}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["claim3", "--device", "tpu"], "--device must be cpu, cuda or cuda:N, got 'tpu'"),
    (["claim1", "--small", "--device", "cuda:x"], "--device must be cpu, cuda or cuda:N, got 'cuda:x'"),
    (["claim3", "--data", "bogus"], "claim3 measures on Gaussian inputs: --data does not apply to it (it does to "
                                    "claim1, claim2, claim4, fig9, normfree)"),
    (["fig6b", "--small", "--download"], "fig6b measures on Gaussian inputs: --download does not apply to it"),
    (["claim3", "--data-dir", "/data"], "claim3 measures on Gaussian inputs: --data-dir does not apply to it"),
    (["claim1", "--small", "--train-epochs", "2"], "--train-epochs applies to fig9 only, not claim1"),
    (["fig9", "--small", "--train-epochs", "-1"], "--train-epochs must be 0 or more, got -1.0"),
    (["claim1", "--small", "--data", "bogus"], "unknown dataset 'bogus'"),
])
def test_reproduce_refuses_what_does_not_apply_before_creating_anything(tmp_path, normx_exe, args, message):
    """``--device tpu`` was a 23-line traceback that had created ``--out`` already; ``claim3 --data
    bogus`` was accepted and ignored."""
    out = tmp_path / "deep" / "out"
    result = subprocess.run([*normx_exe, "reproduce", *args, "--out", str(out)], capture_output=True, text=True,
                            timeout=120)
    assert one_line(result).startswith(f"normx: error: {message}")
    assert list(tmp_path.iterdir()) == []
