"""Many workers on one study in a real PostgreSQL server (the ``postgres_url`` fixture starts one).

Real processes (``normx study run``) against a real server: the study ends with exactly the
budgeted number of distinct compositions, and a worker killed mid-trial has its trial retried.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest

pytestmark = pytest.mark.postgres

STUDY = """
name = "{name}"
models = ["mlp(depth=2, width=16)"]
n_trials = 4
seed = 0
[objectives]
test_accuracy = "maximize"
cosine_similarity = "minimize"
[data]
name = "gaussian"
train_limit = 128
test_limit = 64
[space]
fixed = "affine | relu"
[space.slots]
center = ["none", "mean"]
scale = ["std", "root_mean_square"]
[space.params]
axes = ["b", "c"]
[screening]
batch_size = 32
batches = 1
reject_variance_growth = []
[training]
steps = {steps}
batch_size = 32
[workers]
heartbeat_interval = 1
grace_period = 3
"""


def _write(tmp_path, steps: int) -> tuple[str, str]:
    name = f"dist-{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.format(name=name, steps=steps))
    return name, str(path)


def _worker(normx_exe, url: str, path: str, budget: int) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([*normx_exe, "study", "run", path, "--storage", url, "--n-trials", str(budget)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _trials(url: str, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def test_four_workers_finish_exactly_the_budget(tmp_path, normx_exe, postgres_url):
    from optuna.trial import TrialState

    name, path = _write(tmp_path, steps=5)
    budget = 10
    workers = [_worker(normx_exe, postgres_url, path, budget) for _ in range(4)]
    outputs = [w.communicate(timeout=240) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err[-2000:]
    trials = _trials(postgres_url, name)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == len(trials)  # nothing running, waiting or failed
    # the budget counts distinct compositions: exactly `budget` evaluated (never one twice at once);
    # a repeat the sampler drew is told the earlier result (or pruned while that one still runs)
    fresh = [t for t in finished if "reused_from" not in t.user_attrs]
    assert len(fresh) == budget
    assert len({t.user_attrs["equivalence_key"] for t in fresh}) == budget
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    ran_by = {t.user_attrs["worker"] for t in trials}
    assert len(ran_by) >= 2  # the work was shared
    for t in finished:
        assert t.user_attrs["stage"] in ("done", "pruned")
        assert "spec" in t.user_attrs


def test_killed_worker_has_its_trial_retried(tmp_path, normx_exe, postgres_url):
    from optuna.trial import TrialState

    name, path = _write(tmp_path, steps=3000)
    budget = 2
    victim = _worker(normx_exe, postgres_url, path, budget)
    deadline = time.monotonic() + 120
    running = None
    while time.monotonic() < deadline and running is None:
        time.sleep(0.2)
        try:
            trials = _trials(postgres_url, name)
        except KeyError:
            continue
        running = next((t for t in trials if t.state == TrialState.RUNNING
                        and t.user_attrs.get("stage") == "training"), None)
    assert running is not None, "the worker never reached training"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)

    rescuer = _worker(normx_exe, postgres_url, path, budget)
    out, err = rescuer.communicate(timeout=300)
    assert rescuer.returncode == 0, err[-2000:]
    trials = _trials(postgres_url, name)
    by_number = {t.number: t for t in trials}
    assert by_number[running.number].state == TrialState.FAIL  # found stale by the heartbeat
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == running.number]
    assert len(retries) == 1
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retries[0].params == running.params
    assert retries[0].user_attrs["spec"] == running.user_attrs["spec"]
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                and "reused_from" not in t.user_attrs]
    assert len(finished) == budget
