"""The layers import only downwards: core <- search <- tui <- cli.

Checked by parsing every source file's imports with ``ast`` (nothing is imported, so a lazy import
inside a function or under ``TYPE_CHECKING`` counts like any other). The rules:

(a) core — ``explorer/*.py`` (the top level, but ``explorer/__main__.py``: ``python -m explorer``
    is the command line) and ``plugins/`` — imports neither optuna, rich nor
    textual, nor ``explorer.search``, ``explorer.tui`` or ``explorer.cli``;
(b) ``explorer/search/`` imports neither rich nor textual, nor ``explorer.tui`` or ``explorer.cli``;
(c) ``explorer/tui/`` reads the search layer only through its read side: ``explorer.search.results``
    (finding, loading and summarising a study), ``explorer.search.validation`` (the predictor
    validation, an analysis of those results) and ``explorer.search.events`` (the runner's event
    stream that the live progress display reacts to). Never the runner, the search space, study
    files or the writable storage; and never ``explorer.cli``.

A failure lists every offending ``file:line`` with the import.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TUI_MAY_IMPORT_FROM_SEARCH = ("explorer.search.results", "explorer.search.validation", "explorer.search.events")


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
        if within(module, "optuna", "rich", "textual"):
            return "core imports neither optuna, rich nor textual"
        if within(module, "explorer.search", "explorer.tui", "explorer.cli"):
            return "core imports no layer above it"
        return None

    core = [p for p in sources("explorer/*.py", "plugins/**/*.py") if p.name != "__main__.py"]
    assert violations(core, check) == []


def test_search_imports_no_ui():
    def check(module: str) -> str | None:
        if within(module, "rich", "textual"):
            return "explorer.search imports neither rich nor textual"
        if within(module, "explorer.tui", "explorer.cli"):
            return "explorer.search imports no layer above it"
        return None

    assert violations(sources("explorer/search/**/*.py"), check) == []


def test_tui_reads_search_only_through_its_read_side():
    def check(module: str) -> str | None:
        if within(module, "explorer.search") and not within(module, *TUI_MAY_IMPORT_FROM_SEARCH):
            return f"explorer.tui imports from explorer.search only {', '.join(TUI_MAY_IMPORT_FROM_SEARCH)}"
        if within(module, "explorer.cli"):
            return "explorer.tui imports no layer above it"
        return None

    assert violations(sources("explorer/tui/**/*.py"), check) == []


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
