"""The layers import only downwards: core <- search <- {normbench, tui, plots} <- cli.

Checked by parsing every source file's imports with ``ast`` (nothing is imported, so a lazy import
inside a function or under ``TYPE_CHECKING`` counts like any other). The rules:

(a) core — ``explorer/*.py`` (the top level, but ``explorer/__main__.py``: ``python -m explorer``
    is the command line) and ``plugins/`` — imports neither optuna, rich, textual nor matplotlib,
    nor ``explorer.search``, ``explorer.tui``, ``explorer.plots`` or ``explorer.cli``;
(b) ``explorer/search/`` imports neither rich, textual nor matplotlib, nor ``explorer.tui``,
    ``explorer.plots``, ``explorer.cli`` or ``explorer.normbench``, with one exception: the learned
    screening score (``explorer/search/learned.py``) reads the NormBench tables a study names as its
    prior through their plain reader, ``explorer.normbench.table`` (no optuna, no torch, nothing of
    search), and only inside the functions that read them;
(c) ``explorer/tui/`` (the terminal: the viewer, the live progress) reads the search layer only
    through its read side: ``explorer.search.results`` (finding, loading and summarising a study),
    ``explorer.search.validation`` (the predictor validation, an analysis of those results) and
    ``explorer.search.events`` (the runner's event stream that the live progress display reacts
    to). Never the runner, the search space, study files or the writable storage; never matplotlib,
    ``explorer.plots`` or ``explorer.cli``;
(d) ``explorer/plots/`` (matplotlib figures, for files) reads the search layer through the same
    read side as the terminal (``results``, ``validation``) and the core's claim results; it imports
    neither rich nor textual, nor ``explorer.tui`` or ``explorer.cli``;
(f) ``explorer/normbench/`` (tables of whole spaces, searches replayed on them) builds on search
    (the runner, the policies) and imports neither rich, textual nor matplotlib, nor
    ``explorer.tui``, ``explorer.plots`` or ``explorer.cli``; its ``table`` module (what ``load``
    reads) imports neither optuna nor torch, nor anything of search; core imports nothing of it,
    search only its table reader (b);
(e) ``explorer/cli/`` is the top: every layer above imports nothing of it (checked by (a)-(d)), and
    its command modules (the ones ``normx --help`` imports) import optuna, rich, textual, matplotlib,
    ``explorer.tui``, ``explorer.plots`` and the modules of ``explorer.search`` only inside the
    function that runs a command, so that the help stays fast.

A failure lists every offending ``file:line`` with the import.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TUI_MAY_IMPORT_FROM_SEARCH = ("explorer.search.results", "explorer.search.validation", "explorer.search.events")
PLOTS_MAY_IMPORT_FROM_SEARCH = ("explorer.search.results", "explorer.search.validation")
#: what a command module of ``explorer.cli`` imports only inside a function
CLI_LAZY = ("optuna", "rich", "textual", "matplotlib", "explorer.tui", "explorer.plots")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``; ``from a import b`` yields ``a.b`` too,
    so that ``from explorer.search import runner`` is seen as importing ``explorer.search.runner``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}" if alias.name != "*" else module


def within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(files: list[Path], allowed: Callable[[str], str | None]) -> list[str]:
    found = []
    for path in files:
        for line, module in imports(path):
            reason = allowed(module)
            if reason:
                found.append(f"{path.relative_to(ROOT)}:{line}: imports {module} ({reason})")
    return found


def sources(*globs: str) -> list[Path]:
    files = sorted({p for g in globs for p in ROOT.glob(g)})
    assert files, f"no source files match {globs}"
    return files


def test_core_imports_no_search_ui_or_their_libraries():
    def check(module: str) -> str | None:
        if within(module, "optuna", "rich", "textual", "matplotlib"):
            return "core imports neither optuna, rich, textual nor matplotlib"
        if within(module, "explorer.search", "explorer.normbench", "explorer.tui", "explorer.plots", "explorer.cli"):
            return "core imports no layer above it"
        return None

    core = [p for p in sources("explorer/*.py", "plugins/**/*.py") if p.name != "__main__.py"]
    assert violations(core, check) == []


def test_search_imports_no_ui():
    def check(module: str) -> str | None:
        if within(module, "rich", "textual", "matplotlib"):
            return "explorer.search imports neither rich, textual nor matplotlib"
        if within(module, "explorer.normbench", "explorer.tui", "explorer.plots", "explorer.cli"):
            return "explorer.search imports no layer above it"
        return None

    learned = ROOT / "explorer/search/learned.py"
    others = [p for p in sources("explorer/search/**/*.py") if p != learned]

    def table_reader_only(module: str) -> str | None:
        if within(module, "explorer.normbench.table"):
            return None
        if within(module, "explorer.normbench"):
            return "the learned score reads NormBench tables through explorer.normbench.table only"
        return check(module)

    assert violations(others, check) == []
    assert violations([learned], table_reader_only) == []
    assert [f"{line}: {module}" for line, module in top_level_imports(learned)
            if within(module, "explorer.normbench")] == [], "the table reader is imported only where a prior is read"


def test_normbench_builds_on_search_and_its_tables_load_without_optuna():
    def check(module: str) -> str | None:
        if within(module, "rich", "textual", "matplotlib"):
            return "explorer.normbench imports neither rich, textual nor matplotlib"
        if within(module, "explorer.tui", "explorer.plots", "explorer.cli"):
            return "explorer.normbench imports no layer above it"
        return None

    assert violations(sources("explorer/normbench/**/*.py"), check) == []
    light = [ROOT / "explorer/normbench/__init__.py", ROOT / "explorer/normbench/table.py"]
    assert violations(light, lambda m: "load() stays light, and search may read it"
                      if within(m, "optuna", "torch", "explorer.search") else None) == []


def above_search(layer: str, read_side: tuple[str, ...], forbidden: tuple[str, ...],
                 why: str) -> Callable[[str], str | None]:
    """The rule of a layer above search: its ``read_side`` of explorer.search, none of ``forbidden``, no cli."""
    def check(module: str) -> str | None:
        if within(module, "explorer.search") and not within(module, *read_side):
            return f"{layer} imports from explorer.search only {', '.join(read_side)}"
        if within(module, *forbidden):
            return why
        if within(module, "explorer.cli"):
            return f"{layer} imports no layer above it"
        return None

    return check


def test_tui_reads_search_only_through_its_read_side():
    check = above_search("explorer.tui", TUI_MAY_IMPORT_FROM_SEARCH, ("matplotlib", "explorer.plots"),
                         "explorer.tui is the terminal: figures are explorer.plots'")
    assert violations(sources("explorer/tui/**/*.py"), check) == []


def test_plots_read_search_only_through_its_read_side_and_no_terminal():
    check = above_search("explorer.plots", PLOTS_MAY_IMPORT_FROM_SEARCH, ("rich", "textual", "explorer.tui"),
                         "explorer.plots draws files: no terminal code")
    assert violations(sources("explorer/plots/**/*.py"), check) == []


def top_level_imports(path: Path) -> list[tuple[int, str]]:
    """The imports of ``path`` that run when it is imported: outside every function, and not under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lazy = {id(inner) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            or (isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"))
            for inner in ast.walk(node)}
    eager = {node.lineno for node in ast.walk(tree)
             if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in lazy}
    return [(line, module) for line, module in imports(path) if line in eager]


def test_cli_command_modules_import_the_layers_below_only_when_a_command_runs():
    from explorer.cli import COMMANDS

    def check(module: str) -> str | None:
        if within(module, *CLI_LAZY):
            return "a command module imports it inside the function that runs the command"
        if within(module, "explorer.search") and module not in ("explorer.search", "explorer.search.default_storage"):
            return "a command module imports explorer.search's modules inside the function that runs the command"
        return None

    modules = sorted({ROOT / (name.replace(".", "/") + ".py") for name in COMMANDS.values()}
                     | {ROOT / "explorer/cli/__init__.py", ROOT / "explorer/cli/render.py"})
    found = []
    for path in modules:
        found += [f"{path.relative_to(ROOT)}:{line}: imports {module} ({reason})"
                  for line, module in top_level_imports(path) if (reason := check(module))]
    assert found == []


def test_the_checker_sees_lazy_relative_and_from_imports(tmp_path, monkeypatch):
    """The rules above would pass vacuously if imports were missed: a file with each kind is read right."""
    package = tmp_path / "explorer" / "tui"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    probe = package / "probe.py"
    probe.write_text("import rich.text\nfrom ..search import runner\n\ndef f():\n    from optuna import trial\n"
                     "if False:\n    from explorer.search.results import StudyData\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert sorted(imports(probe)) == [(1, "rich.text"), (2, "explorer.search.runner"), (5, "optuna.trial"),
                                      (7, "explorer.search.results.StudyData")]
    assert violations([probe], lambda m: "above" if within(m, "explorer.search.runner") else None) == \
        ["explorer/tui/probe.py:2: imports explorer.search.runner (above)"]
    assert top_level_imports(probe) == [(1, "rich.text"), (2, "explorer.search.runner"),  # not the function's
                                        (7, "explorer.search.results.StudyData")]
