"""Textual widgets of the viewer: a plot that fills its box, the trials table, the too-small guard."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import DataTable, Static

from explorer.search.results import TrialRow
from explorer.tui.formatting import COLUMNS
from explorer.tui.plot import Plot
from explorer.tui.tables import row_cells

#: rows added at once, then per event-loop turn, when the table is filled
FIRST_CHUNK, CHUNK = 60, 500
#: the smallest terminal the viewer draws in; below it, a message instead
MIN_WIDTH, MIN_HEIGHT = 60, 15


class PlotView(Widget):
    """Draws ``make_plot()`` at exactly the widget's size (so plots use all of an 80×24 terminal)."""

    DEFAULT_CSS = "PlotView { height: 1fr; }"

    def __init__(self, make_plot: Callable[[], Plot | None], **kwargs) -> None:
        super().__init__(**kwargs)
        self.make_plot = make_plot

    def render(self) -> Text:
        plot = self.make_plot()
        if plot is None:
            return Text("(nothing to plot)", style="dim")
        width, height = max(20, self.size.width), max(4, self.size.height)
        extra = len(plot.render_lines(width, 1)) - 1
        lines = plot.render_lines(width, max(2, height - extra))
        return Text("\n").join(lines)


#: the table's columns with their widths; the composition takes what is left
TABLE_COLUMNS: dict[str, int] = {"number": 5, "spec": 0, "state": 8, "progress": 14, "test_accuracy": 8,
                                 "cosine_similarity": 7, "grad_explosion_exponent": 9, "stable_rank": 7,
                                 "mean_train_accuracy": 9, "reason": 40}


class TrialsTable(DataTable):
    """The trials, one row each, keyed by trial number; ``◆`` marks the Pareto front."""

    DEFAULT_CSS = "TrialsTable { height: 1fr; }"
    # DataTable's Home/End scroll sideways; in a table of rows they go to the first/last trial.
    BINDINGS = [Binding("home", "scroll_top", "first", show=False), Binding("end", "scroll_bottom", "last", show=False)]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.sort_key = "number"
        self.reverse = False
        self.filling = False  # True while rows are still being added in chunks
        self._spec_width = 0
        self._generation = 0
        self._pending_cursor: int | None = None

    def spec_width(self, total_width: int) -> int:
        # the columns after the composition that must stay visible at 80 columns: state, stage, test acc
        fixed = TABLE_COLUMNS["number"] + TABLE_COLUMNS["state"] + TABLE_COLUMNS["progress"] + TABLE_COLUMNS["test_accuracy"]
        return max(18, min(64, total_width - fixed - 2 * 5 - 2))

    def set_rows(self, rows: Sequence[TrialRow], total_width: int) -> None:
        """Show ``rows`` (already filtered and sorted), keeping the cursor on the same trial.

        The first screenfuls are added at once and the rest in chunks from the event loop, so a
        study of thousands of trials opens (and re-sorts) without a pause."""
        current = self._pending_cursor if self._pending_cursor is not None else self.current_number()
        width = self.spec_width(total_width)
        if width != self._spec_width or not self.columns:
            self.clear(columns=True)
            self._spec_width = width
            for key, col_width in TABLE_COLUMNS.items():
                self.add_column(self._label(key), key=key, width=col_width or width)
        else:
            self.clear()
            for key in TABLE_COLUMNS:
                self.columns[key].label = Text(self._label(key))
        self._generation += 1
        self._pending_cursor = current
        self._add_chunk(list(rows), self._generation, FIRST_CHUNK)

    def _label(self, key: str) -> str:
        return COLUMNS[key] + ((" ▼" if self.reverse else " ▲") if key == self.sort_key else "")

    def _add_chunk(self, rows: list[TrialRow], generation: int, size: int) -> None:
        if generation != self._generation or not self.is_attached:
            return  # a newer set_rows replaced these rows, or the app is closing
        keys = list(TABLE_COLUMNS)
        for row in rows[:size]:
            self.add_row(*row_cells(row, keys), key=str(row.number))
        pending = self._pending_cursor
        if pending is not None and str(pending) in self.rows:
            self.move_cursor(row=self.get_row_index(str(pending)), animate=False)
            self._pending_cursor = None
        rest = rows[size:]
        if rest:
            self.set_timer(0.001, lambda: self._add_chunk(rest, generation, CHUNK))
        else:
            self._pending_cursor = None
            self.filling = False
            return
        self.filling = True

    def current_number(self) -> int | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # cursor outside the (possibly just cleared) table
            return None
        return int(key.value) if key.value is not None else None

    def cursor_column_key(self) -> str:
        keys = list(TABLE_COLUMNS)
        return keys[min(max(self.cursor_column, 0), len(keys) - 1)]


class TooSmall(Static):
    """Shown instead of the screen's content when the terminal is below :data:`MIN_WIDTH`×:data:`MIN_HEIGHT`."""

    DEFAULT_CSS = """
    TooSmall { display: none; width: 100%; height: 100%; content-align: center middle; color: $warning; }
    """

    def show_size(self, width: int, height: int) -> None:
        self.update(f"terminal too small ({width}×{height}); normx view needs at least {MIN_WIDTH}×{MIN_HEIGHT}.\n"
                    "Enlarge the window, or press q to quit.")
