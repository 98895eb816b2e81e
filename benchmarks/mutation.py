"""Mutation score of one module that decides results, with the tests that cover it (mutmut 3).

Too slow for CI: run it as a benchmark, one module at a time. It copies the tracked tree into
``.mutation/<module>/`` (the built-in plugins under their installed name, ``normx_plugins``, so their
mutants are the ones the entry points load), writes a ``[tool.mutmut]`` table limited to the module
and its tests, runs ``mutmut run`` there, and writes the score and every surviving mutant's diff:

    python benchmarks/mutation.py explorer/search/policy.py            # the module's own test subset
    python benchmarks/mutation.py explorer/spec.py --tests tests/test_spec.py --max-children 2
    python benchmarks/mutation.py --list                               # modules and their tests
    python benchmarks/mutation.py explorer/search/reuse.py --mutants '*reuse_source*'   # one function's mutants

Outputs: ``.mutation/<slug>/score.json`` and ``survivors.txt``, and the module's row merged into
``benchmarks/mutation_scores.json`` (the table in docs/mutation.md is made from it).
Score = killed (failing test, timeout or crash) / checked mutants that some test reaches; mutants that no
test in the subset reaches are counted apart (``no_tests``), and so are those a run cut short never
checked (``--report-only`` scores such a run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The worker's tests: the in-process ones only (test_search's end-to-end runs reach every function of
#: the worker's modules and cost seconds per mutant; the subprocess tests are invisible to the stats run).
WORKER_TESTS = [
    "tests/test_reliability.py::test_an_interrupted_trial_is_recorded_its_retry_queued_and_run_on_resume",
    "tests/test_reliability.py::test_a_space_of_presets_ends_exhausted_within_the_budget",
    "tests/test_reliability.py::test_a_budget_of_two_runs_two_and_the_rest_waits",
    "tests/test_reliability.py::test_a_trial_on_two_models_reports_its_stages_progress_and_end",
    "tests/test_search.py::test_screening_prunes_with_the_reason_and_never_trains",
    "tests/test_search.py::test_study_runs_dedups_records_the_schema_and_resumes", "tests/test_policy.py",
    "tests/test_worker.py"]

#: Module -> the tests that cover it (run in-process; mutmut runs only those that reach a mutant).
MODULES: dict[str, list[str]] = {
    "explorer/search/policy.py": ["tests/test_screening_policy.py", "tests/test_policy.py"],
    "explorer/search/study_file.py": ["tests/test_study_file.py", "tests/test_policy.py", "tests/test_schema.py"],
    "explorer/statistics.py": ["tests/test_reference.py", "tests/test_spec.py", "tests/test_cli_errors.py"],
    "explorer/predictors.py": ["tests/test_predictors.py", "tests/test_reference.py", "tests/test_score_cli.py"],
    "explorer/spec.py": ["tests/test_spec.py", "tests/test_bounded.py"],
    "plugins/statistics.py": ["tests/test_reference.py", "tests/test_spec.py", "tests/test_bounded.py"],
    "explorer/scoring.py": ["tests/test_predictors.py", "tests/test_score_cli.py"],
    "explorer/training.py": ["tests/test_training.py"],
    # the worker, split by job (worker.py was measured before the split, docs/mutation.md), and the
    # heartbeat and liveness checks it runs
    **{module: WORKER_TESTS for module in (
        "explorer/search/worker.py", "explorer/search/claiming.py", "explorer/search/reuse.py",
        "explorer/search/evaluation.py", "explorer/search/recording.py", "explorer/search/liveness.py")},
    # storage: the in-process tests only (the subprocess tests are invisible to the stats run)
    "explorer/search/storage.py": ["tests/test_storage_safety.py"],  # its PostgreSQL tests too (WITH_POSTGRES)
    "explorer/search/storage_files.py": ["tests/test_storage_safety.py"],
    "explorer/search/results/rows.py": ["tests/test_tui_model.py"],
    "explorer/search/results/study_data.py": ["tests/test_tui_model.py"],
}

#: Modules whose PostgreSQL tests (marked ``postgres``, left out elsewhere) run too, on one server for the
#: whole run: ``$NORMX_TEST_POSTGRES_URL``, else a throwaway one (tests/conftest.py's) started here. The
#: tests' session fixture would otherwise start a server in every mutant's test session (~2.5 s each).
WITH_POSTGRES = {"explorer/search/storage.py"}

#: Installed package name of a source folder (pyproject's package-dir).
RENAMED = {"plugins": "normx_plugins"}


def slug(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".")


def installed_path(module: str) -> str:
    head, _, rest = module.partition("/")
    return f"{RENAMED.get(head, head)}/{rest}"


@contextlib.contextmanager
def postgres_for(module: str, env: dict[str, str]):
    """The URL of a PostgreSQL server for ``module``'s PostgreSQL tests, or None: the module runs
    none, or no server can be started here (its tests are then left out, as the score says)."""
    if module not in WITH_POSTGRES:
        yield None
        return
    if env.get("NORMX_TEST_POSTGRES_URL"):
        yield env["NORMX_TEST_POSTGRES_URL"]
        return
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import conftest  # the tests' own server: the same executor, role and password
    finally:
        sys.path.pop(0)
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(conftest.throwaway_postgres())
        except conftest.PostgresUnavailable as err:
            print(f"mutation.py: {module}: its PostgreSQL tests are left out: {err}", file=sys.stderr)
            url = None
        yield url


def prepare(work: Path, module: str, tests: list[str], postgres: bool = False) -> None:
    """A fresh copy of the tracked tree with a mutmut table for ``module`` only (and its
    PostgreSQL tests when ``postgres``: $NORMX_TEST_POSTGRES_URL names their server)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for source, installed in RENAMED.items():
        shutil.copytree(work / source, work / installed)
    also = sorted({name.split("/")[0] for name in files} - {"explorer", "plugins", "tests", "pyproject.toml"})
    table = {
        "source_paths": ["explorer", *RENAMED.values()],
        "only_mutate": [installed_path(module)],
        "also_copy": also,
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-p", "no:xdist", *([] if postgres else ["-m", "not postgres"])],
        "pytest_add_cli_args_test_selection": tests,
        "process_isolation": "fork",
        "timeout_multiplier": 10.0,
        "timeout_constant": 5.0,
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    with (work / "pyproject.toml").open("a") as f:
        f.write("\n".join(lines) + "\n")


def mutmut(work: Path, *args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("mutmut")
    return subprocess.run([str(exe), *args], cwd=work, env=env, text=True, **kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", nargs="?", help="a source file, e.g. explorer/search/policy.py")
    parser.add_argument("--tests", nargs="+", help="test files to run instead of the module's subset")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested in parallel (default 1)")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests")
    parser.add_argument("--mutants", nargs="+", metavar="PATTERN",
                        help="only the mutants whose names match (fnmatch, e.g. '*reuse_source*'): for working on one "
                             "function's survivors; the score is printed, not merged into the table")
    parser.add_argument("--report-only", action="store_true",
                        help="score the last run of MODULE again (e.g. one cut short) without running mutmut")
    args = parser.parse_args()
    if args.list or not args.module:
        for module, tests in MODULES.items():
            print(f"{module:36} {' '.join(tests)}")
        return 0
    module = args.module
    if not (ROOT / module).is_file():
        print(f"mutation.py: error: {module}: no such source file (see --list)", file=sys.stderr)
        return 2
    tests = args.tests or MODULES.get(module)
    if not tests:
        print(f"mutation.py: error: {module}: no test subset known; pass --tests", file=sys.stderr)
        return 2
    work = ROOT / ".mutation" / slug(module)
    # Subprocesses the tests start (``normx ...``) import the mutants too: the trampoline reads
    # MUTANT_UNDER_TEST from the environment, which they inherit.
    env = dict(os.environ, PYTHONPATH=str(work / "mutants"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NORMX_HYPOTHESIS_PROFILE=os.environ.get("NORMX_HYPOTHESIS_PROFILE", "normx"))
    elapsed = None
    if not args.report_only:
        with postgres_for(module, env) as postgres:
            if postgres:
                env["NORMX_TEST_POSTGRES_URL"] = postgres
            prepare(work, module, tests, postgres=postgres is not None)
            # Before the interpreter starts: a PYTHONPATH entry missing at start-up is cached as "no
            # importer", and the tests would then import the unmutated tree through the editable install.
            (work / "mutants").mkdir()
            start = time.monotonic()
            run = mutmut(work, "run", "--max-children", str(args.max_children), *(args.mutants or ()), env=env)
            elapsed = time.monotonic() - start
        if run.returncode != 0:
            print(f"mutation.py: mutmut run failed (exit {run.returncode}); see {work}", file=sys.stderr)
            return 1
    elif not (work / "mutants").is_dir():
        print(f"mutation.py: error: {work}: no run to report on", file=sys.stderr)
        return 2
    else:  # the tests that run used, whatever the subset is now
        tests = tomllib.loads((work / "pyproject.toml").read_text())["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]
    return report(work, module, tests, env, elapsed, merge=not args.mutants)


def report(work: Path, module: str, tests: list[str], env: dict[str, str], elapsed: float | None,
           merge: bool = True) -> int:
    """Score of the run in ``work`` (a run cut short counts only the mutants it checked)."""
    mutmut(work, "export-cicd-stats", env=env, check=True, capture_output=True)
    stats = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text())
    listing = mutmut(work, "results", env=env, capture_output=True).stdout
    status = dict(line.strip().rsplit(": ", 1) for line in listing.splitlines() if ": " in line)
    survivors = [name for name, state in status.items() if state == "survived"]
    unchecked = sum(1 for state in status.values() if state == "not checked")
    killed = stats["killed"] + stats["timeout"] + stats["segfault"]
    tested = killed + stats["survived"] + stats["suspicious"]
    score = {
        "module": module, "tests": tests, "killed": killed, "survived": stats["survived"],
        "no_tests": stats["no_tests"], "not_checked": unchecked, "total": stats["total"],
        "suspicious": stats["suspicious"], "score": round(100 * killed / tested, 1) if tested else None,
        "seconds": round(elapsed) if elapsed is not None else None, "survivors": survivors,
    }
    if module in WITH_POSTGRES:  # whether a server was there for its PostgreSQL tests
        cli = tomllib.loads((work / "pyproject.toml").read_text())["tool"]["mutmut"]["pytest_add_cli_args"]
        score["postgres"] = "not postgres" not in cli
    (work / "score.json").write_text(json.dumps(score, indent=2) + "\n")
    if merge:  # a run of some mutants only is not the module's score
        table = ROOT / "benchmarks" / "mutation_scores.json"
        scores = json.loads(table.read_text()) if table.exists() else {}
        scores[module] = {k: v for k, v in score.items() if k != "survivors"}
        table.write_text(json.dumps(dict(sorted(scores.items())), indent=2) + "\n")
    # every survivor's diff, from one process (``mutmut show`` per mutant pays the start-up each time)
    script = ("import sys\nfrom mutmut.__main__ import find_mutant, get_diff_for_mutant\n"
              "for name in sys.argv[1:]:\n    print('# ' + name)\n"
              "    print(get_diff_for_mutant(name, path=find_mutant(name).path))\n")
    with (work / "survivors.txt").open("w") as f:
        subprocess.run([sys.executable, "-c", script, *survivors], cwd=work, env=env, text=True, stdout=f, check=False)
    partial = f", {unchecked} not checked ({'run cut short' if merge else 'not matched by --mutants'})" if unchecked else ""
    print(f"{module}: {killed}/{tested} killed ({score['score']} %), {stats['survived']} survived, "
          f"{stats['no_tests']} reached by no test{partial}; survivors in {work / 'survivors.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
