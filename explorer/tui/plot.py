"""Scatter and line plots drawn in braille characters, as rich renderables.

Each character cell holds 2×4 dots, so a 60×16 plot has 120×64 positions. A plot fills the width
(and, inside Textual, the height) it is given, which is what keeps the viewer usable at 80×24.
A cell shows one colour: the last point drawn into it wins, so callers draw the important points
last. ``markers`` overlay a whole character (the Pareto trials) on top of the dots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, RenderResult
from rich.style import Style
from rich.text import Text

_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))  # [column][row] -> braille bit
#: accuracy colour scale, worst to best (also readable as a legend without colour: ○ ◔ ◑ ◕ ●)
SCALE_COLOURS = ("red3", "dark_orange", "yellow3", "chartreuse3", "green1")
MISSING_COLOUR = "grey50"


@dataclass
class Series:
    """Points of one colour; ``line`` joins consecutive points."""

    points: Sequence[tuple[float, float]]
    colour: str = "cyan"
    label: str = ""
    line: bool = False


@dataclass
class Plot:
    """A 2-D plot of several series; a rich renderable that fills the width it is given."""

    series: list[Series]
    title: str = ""
    x_label: str = ""
    y_label: str = ""
    height: int | None = None  # lines of plot area; None -> the height Textual gives, else 12
    log_y: bool = False
    markers: list[tuple[float, float, str, str]] = field(default_factory=list)  # (x, y, char, colour)
    legend: Text | None = None

    def _transform(self, y: float) -> float | None:
        if not math.isfinite(y):
            return None
        if self.log_y:
            return math.log10(y) if y > 0 else None
        return y

    def _ranges(self) -> tuple[float, float, float, float] | None:
        xs, ys = [], []
        for s in self.series:
            for x, y in s.points:
                ty = self._transform(y)
                if math.isfinite(x) and ty is not None:
                    xs.append(x)
                    ys.append(ty)
        if not xs:
            return None

        def padded(lo: float, hi: float) -> tuple[float, float]:
            if hi - lo < 1e-12:
                pad = abs(lo) * 0.05 or 0.5
                return lo - pad, hi + pad
            pad = (hi - lo) * 0.03
            return lo - pad, hi + pad

        return (*padded(min(xs), max(xs)), *padded(min(ys), max(ys)))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(20, options.max_width)
        extra = (1 if self.title else 0) + 2 + (1 if self.legend is not None else 0)
        if self.height is not None:
            rows = self.height
        elif options.height is not None:
            rows = max(3, options.height - extra)
        else:
            rows = 12
        yield from self.render_lines(width, rows)

    def render_lines(self, width: int, rows: int) -> list[Text]:
        """The plot as lines of text: ``rows`` lines of plot area plus axes, title and legend."""
        lines: list[Text] = []
        if self.title:
            lines.append(Text(self.title, style="bold", overflow="ellipsis", no_wrap=True))
        ranges = self._ranges()
        if ranges is None:
            lines.append(Text("  (nothing to plot yet)", style="dim"))
            return lines
        x0, x1, y0, y1 = ranges
        labels = [self._tick(y1), self._tick((y0 + y1) / 2), self._tick(y0)]
        gutter = max(len(label) for label in labels) + 1
        cols = max(4, width - gutter - 1)
        dots = [[0] * cols for _ in range(rows)]
        colours: list[list[str | None]] = [[None] * cols for _ in range(rows)]

        def to_dot(x: float, y: float) -> tuple[int, int] | None:
            ty = self._transform(y)
            if ty is None or not math.isfinite(x):
                return None
            dx = int(round((x - x0) / (x1 - x0) * (cols * 2 - 1)))
            dy = int(round((y1 - ty) / (y1 - y0) * (rows * 4 - 1)))
            return min(max(dx, 0), cols * 2 - 1), min(max(dy, 0), rows * 4 - 1)

        def put(dx: int, dy: int, colour: str) -> None:
            col, row = dx // 2, dy // 4
            dots[row][col] |= _DOTS[dx % 2][dy % 4]
            colours[row][col] = colour

        for s in self.series:
            previous = None
            for x, y in s.points:
                dot = to_dot(x, y)
                if dot is None:
                    previous = None
                    continue
                if s.line and previous is not None:
                    steps = max(abs(dot[0] - previous[0]), abs(dot[1] - previous[1]))
                    for k in range(1, steps):
                        put(previous[0] + round((dot[0] - previous[0]) * k / steps),
                            previous[1] + round((dot[1] - previous[1]) * k / steps), s.colour)
                put(*dot, s.colour)
                previous = dot
        overlay: dict[tuple[int, int], tuple[str, str]] = {}
        for x, y, char, colour in self.markers:
            dot = to_dot(x, y)
            if dot is not None:
                overlay[(dot[1] // 4, dot[0] // 2)] = (char, colour)

        label_rows = {0: labels[0], rows // 2: labels[1], rows - 1: labels[2]}
        for r in range(rows):
            line = Text(label_rows.get(r, "").rjust(gutter - 1) + " ", style="dim")
            line.append("┤" if r in label_rows else "│", style="dim")
            for c in range(cols):
                if (r, c) in overlay:
                    char, colour = overlay[(r, c)]
                    line.append(char, style=Style.parse(f"bold {colour}"))
                elif dots[r][c]:
                    line.append(chr(0x2800 + dots[r][c]), style=colours[r][c] or "")
                else:
                    line.append(" ")
            lines.append(line)
        axis = Text(" " * gutter + "└" + "─" * cols, style="dim")
        lines.append(axis)
        left, middle, right = self._tick(x0, log=False), self._tick((x0 + x1) / 2, log=False), self._tick(x1, log=False)
        ticks = " " * (gutter + 1) + left
        mid_at = gutter + 1 + cols // 2 - len(middle) // 2
        ticks = ticks.ljust(mid_at) + middle
        ticks = ticks.ljust(gutter + 1 + cols - len(right)) + right
        label = f"x: {self.x_label}   y: {self.y_label}{' (log scale)' if self.log_y else ''}"
        tick_line = Text(ticks, style="dim")
        if len(ticks) + 3 + len(label) <= width:
            tick_line.append("   " + label, style="italic")
            lines.append(tick_line)
        else:
            lines.append(tick_line)
            lines.append(Text(label, style="italic", overflow="ellipsis", no_wrap=True))
        if self.legend is not None:
            lines.append(self.legend)
        return lines

    def _tick(self, value: float, log: bool | None = None) -> str:
        log = self.log_y if log is None else log
        if log:
            value = 10 ** value
        if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-2):
            return f"{value:.1e}"
        return f"{value:.3g}" if abs(value) >= 100 else f"{value:.2f}"


def colour_for(value: float | None, lo: float, hi: float) -> str:
    """The scale colour of ``value`` between ``lo`` (worst) and ``hi`` (best); grey when unknown."""
    if value is None or not math.isfinite(value):
        return MISSING_COLOUR
    if hi - lo < 1e-12:
        return SCALE_COLOURS[-1]
    k = int((value - lo) / (hi - lo) * len(SCALE_COLOURS))
    return SCALE_COLOURS[min(max(k, 0), len(SCALE_COLOURS) - 1)]


def scale_legend(name: str, lo: float, hi: float, missing: str = "not trained") -> Text:
    """``test acc: ⣿ 0.12 ⣿ 0.25 … ⣿ not trained``: how colours map to values."""
    text = Text(f"{name}: ", style="dim")
    n = len(SCALE_COLOURS)
    for k, colour in enumerate(SCALE_COLOURS):
        text.append("⣿", style=colour)
        text.append(f"≥{lo + (hi - lo) * k / n:.2f} ", style="dim")
    text.append("⣿", style=MISSING_COLOUR)
    text.append(f" {missing}", style="dim")
    return text
