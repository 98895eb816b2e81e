"""The canvas every figure of :mod:`explorer.plots` is drawn on and saved from.

:func:`new_figure` builds a figure on the Agg canvas directly, never through pyplot, so no state is
shared between figures; :func:`save_figure` writes it as PNG and SVG, each file whole or absent.
Importing this module without matplotlib (an optional extra) raises ImportError.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100


def new_figure(width: float, height: float, columns: int = 1, rows: int = 1, **kw: Any) -> tuple[Figure, Any]:
    """A ``width`` x ``height`` inch figure (constrained layout) and its ``rows`` x ``columns`` grid of axes,
    always two-dimensional (``axes[row][column]``); ``kw`` goes to ``Figure.subplots`` (``sharey=True``, say)."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, squeeze=False, **kw)


def save_figure(figure: Figure, stem: str | Path) -> list[Path]:
    """``figure`` as ``stem.png`` and ``stem.svg``, each written to a temporary name and renamed: whole or absent.

    When a write fails (a full disk), its temporary file and the other file of the pair written by
    this call are removed before the error goes on: nothing half-done is left."""
    stem = Path(stem)
    paths: list[Path] = []
    try:
        for suffix in (".png", ".svg"):
            path = stem.with_suffix(suffix)
            tmp = path.with_name(f".{path.name}.tmp")
            try:
                figure.savefig(tmp, format=suffix[1:], dpi=DPI, metadata={"Date": None} if suffix == ".svg" else None)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            paths.append(path)
    except BaseException:
        remove_files(paths)
        raise
    return paths


def remove_files(paths: list[Path]) -> None:
    """Remove the files a failed write made (those already gone are fine)."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
