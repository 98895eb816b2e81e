"""Rich renderings the CLI commands print; the components live in :mod:`explorer.tui.tables` so the
viewer, the report and these commands render alike."""

from __future__ import annotations

from typing import Any

from rich.console import Console


def console() -> Console:
    return Console()


def print_plugins(rows: list[dict[str, Any]]) -> None:
    from explorer.tui.tables import plugins_table

    console().print(plugins_table(rows))


def print_normalizers(rows: list[dict[str, Any]]) -> None:
    from explorer.tui.tables import normalizers_table

    console().print(normalizers_table(rows))


def print_primitives(rows: list[dict[str, Any]]) -> None:
    from explorer.tui.tables import primitives_table

    console().print(primitives_table(rows))


def print_score(result: dict[str, Any]) -> None:
    """A score result (the fields of ``normx score --json``) as tables."""
    from explorer.tui.tables import score_table

    console().print(score_table(result))


def print_models(rows: list[dict[str, Any]]) -> None:
    """The model architectures (``normx models``): name, parameters with defaults, description."""
    from explorer.tui.tables import models_table

    console().print(models_table(rows))
