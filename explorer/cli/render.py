"""Rich renderings shared by the CLI commands (tables of plugins, normalizers, primitives)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def console() -> Console:
    return Console()


def print_plugins(rows: list[dict[str, Any]]) -> None:
    table = Table(title="normx plugins", show_lines=False)
    table.add_column("plugin", style="bold")
    table.add_column("version")
    table.add_column("contributes")
    for row in rows:
        if row.get("error"):
            table.add_row(row["name"], "-", f"[red]failed to load: {row['error']}[/red]")
            continue
        parts = [f"[cyan]{slot}[/cyan]: {', '.join(names)}" for slot, names in row["contributes"].items()]
        table.add_row(row["name"], row["version"], "\n".join(parts) or "-")
    console().print(table)


def print_normalizers(rows: list[dict[str, Any]]) -> None:
    table = Table(title="normalizers (presets)")
    table.add_column("name", style="bold")
    table.add_column("composition (canonical)", style="cyan")
    table.add_column("formula")
    table.add_column("params")
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        table.add_row(row["name"], row["composition"], row["formula"], params)
    console().print(table)


def print_primitives(rows: list[dict[str, Any]]) -> None:
    table = Table(title="primitives")
    table.add_column("slot", style="magenta")
    table.add_column("name", style="bold")
    table.add_column("formula")
    table.add_column("params")
    table.add_column("plugin", style="dim")
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        table.add_row(row["slot"], row["name"], row["formula"], params, row["plugin"])
    console().print(table)
