"""``normx view``: a Textual app over one study, read-only, refreshed while the study runs.

Three tabs — the trials table (sort, filter), the speed–stability trade-off, a predictor against
accuracy — and a detail screen per trial with its per-layer curves. Everything shown comes from
:mod:`explorer.search.results`; this module only lays it out and handles keys.
"""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.events import Resize
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane

from explorer.tui.charts import layer_plot, loss_plot, predictor_plot, tradeoff_plot
from explorer.search.results import StudyData, StudySource, TrialRow, mask_password
from explorer.tui.formatting import format_duration, format_number
from explorer.tui.tables import state_text, summary_text
from explorer.tui.widgets import MIN_HEIGHT, MIN_WIDTH, TABLE_COLUMNS, PlotView, TooSmall, TrialsTable

HELP = """\
[b]normx view[/b] — a study, read-only; it refreshes while the study runs.

[b]anywhere[/b]
  [b]?[/b]            this help                 [b]q[/b]  quit (or back)
  [b]1[/b] [b]2[/b] [b]3[/b]        trials / trade-off / predictor tab
  [b]R[/b]            reload the study now
[b]trials[/b]
  [b]↑ ↓[/b] PgUp PgDn Home End  move            [b]enter[/b]  open the trial
  [b]s[/b]            sort by the next column    [b]r[/b]  reverse the sort
  click a header  sort by that column
  [b]/[/b]            filter                     [b]esc[/b]  back to the table
[b]predictor tab[/b]
  [b]p[/b]            next predictor             [b]o[/b]  test / mean train accuracy
[b]trial screen[/b]
  [b]esc[/b] or [b]q[/b]     back

[b]filter[/b]: space-separated terms, all must hold —
  [i]acc>0.5  cos<=0.3  expl<0.1  state=pruned  spec~gx  pareto[/i]
  or any word found in the composition, state, stage or pruning reason.
  Columns: # spec state stage cos expl rank train acc reason.
[b]◆[/b] marks the Pareto front of the study's objectives.
"""


class GuardedScreen(Screen):
    """A screen that shows a message instead of its content when the terminal is too small."""

    def compose_body(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        yield TooSmall(id="too-small")
        with Vertical(id="body"):
            yield from self.compose_body()

    def on_resize(self, event: Resize) -> None:
        self.check_size(event.size.width, event.size.height)

    def on_mount(self) -> None:
        self.check_size(self.app.size.width, self.app.size.height)

    def check_size(self, width: int, height: int) -> None:
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        guard = self.query_one(TooSmall)
        guard.display = small
        self.query_one("#body").display = not small
        if small:
            guard.show_size(width, height)


class HelpScreen(ModalScreen):
    """Keyboard help (``?``)."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 78; max-width: 100%; height: auto; max-height: 100%;
                                  border: round $accent; background: $surface; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(HELP, id="help-text")


def trial_details(row: TrialRow, data: StudyData) -> Table:
    """The facts of one trial as a two-column table."""
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("composition", Text(row.spec or "-", style="cyan"))
    state = state_text(row)
    if row.pareto:
        state.append("  ◆ Pareto front", style="bold")
    table.add_row("state", state)
    table.add_row("stage", row.progress)
    if row.reason:
        table.add_row("pruned / error", Text(row.reason, style="yellow"))
    screening = row.record.screening
    if screening is not None and screening.get("decision") == "train":
        table.add_row("screening", f"trained: {screening.get('why', '')}")
    for k, objective in enumerate(data.objectives):
        value = row.values[k] if k < len(row.values) else None
        table.add_row(f"{objective.name} {objective.direction.arrow}", format_number(value, 4))
    for key in data.scalar_predictors:
        table.add_row(key.replace("_", " "), format_number(row.value(key), 4))
    if row.variance_growth_kind:
        table.add_row("variance growth", row.variance_growth_kind)
    if row.train:
        table.add_row("mean train acc", format_number(row.mean_train_accuracy, 4))
        table.add_row("test acc", format_number(row.test_accuracy, 4))
        if row.diverged:
            table.add_row("diverged", Text(f"at step {row.train.get('diverged_step')}", style="red"))
        table.add_row("wall time", f"{format_number(row.train.get('wall_time_s'), 1)} s on {row.train.get('device', '?')}")
    if row.reused_from is not None:
        table.add_row("reused from", f"trial #{row.reused_from} (same composition; not counted in the budget)")
    table.add_row("worker", row.worker or "-")
    table.add_row("duration", format_duration(row.duration_s))
    return table


class TrialScreen(GuardedScreen):
    """One trial: its facts, per-layer activation variance and gradient norm, the loss curve."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "back"), Binding("question_mark", "app.help", "help")]
    DEFAULT_CSS = """
    TrialScreen #details { height: auto; padding: 0 1; }
    TrialScreen PlotView { height: 14; padding: 0 1; }
    TrialScreen #title { background: $accent; color: $text; padding: 0 1; }
    """

    def __init__(self, row: TrialRow, data: StudyData) -> None:
        super().__init__()
        self.row, self.data = row, data

    def compose_body(self) -> ComposeResult:
        yield Static(f"trial #{self.row.number} of {self.data.name}", id="title")
        with VerticalScroll():
            yield Static(trial_details(self.row, self.data), id="details")
            if self.row.layer_curve("activation_variance"):
                yield PlotView(lambda: layer_plot(self.row, "activation_variance"), id="activation-variance")
            if self.row.layer_curve("grad_norm"):
                yield PlotView(lambda: layer_plot(self.row, "grad_norm"), id="grad-norm")
            if self.row.loss_curve():
                yield PlotView(lambda: loss_plot(self.row), id="loss")
        yield Footer()


class MainScreen(GuardedScreen):
    BINDINGS = [
        Binding("slash", "app.focus_filter", "filter"),
        Binding("s", "app.next_sort", "sort"),
        Binding("r", "app.reverse_sort", "reverse"),
        Binding("p", "app.next_predictor", "predictor", show=False),
        Binding("o", "app.toggle_outcome", "outcome", show=False),
        Binding("1", "app.tab('trials')", "trials", show=False),
        Binding("2", "app.tab('tradeoff')", "trade-off", show=False),
        Binding("3", "app.tab('predictor')", "predictor", show=False),
        Binding("escape", "app.focus_table", "table", show=False),
    ]
    DEFAULT_CSS = """
    MainScreen #summary { height: auto; max-height: 3; padding: 0 1; background: $boost; }
    MainScreen #filter { height: 3; }
    MainScreen TabbedContent { height: 1fr; }
    MainScreen ContentSwitcher { height: 1fr; }
    MainScreen TabPane { padding: 0; height: 1fr; }
    """

    def compose_body(self) -> ComposeResult:
        app: StudyApp = self.app  # type: ignore[assignment]
        yield Static(id="summary")
        with TabbedContent(id="tabs", initial="trials"):
            with TabPane("1 trials", id="trials"):
                yield Input(placeholder="filter: acc>0.5 cos<0.3 state=pruned spec~gx pareto …  (/ to focus)",
                            id="filter")
                yield TrialsTable(id="table")
            with TabPane("2 trade-off", id="tradeoff"):
                yield PlotView(app.make_tradeoff_plot, id="tradeoff-plot")
            with TabPane("3 predictor vs accuracy", id="predictor"):
                yield PlotView(app.make_predictor_plot, id="predictor-plot")
        yield Footer()


class StudyApp(App):
    """The study viewer."""

    TITLE = "normx view"
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
        Binding("R", "reload", "reload", show=False),
    ]

    def __init__(self, source: StudySource, refresh_s: float | None = 5.0, data: StudyData | None = None) -> None:
        super().__init__()
        self.source = source
        self.refresh_s = refresh_s
        self.data = data or source.load()
        self.filter_text = ""
        self.predictor = self.data.scalar_predictors[0]
        self.outcome = "test_accuracy"
        self._ticks = 0
        self.first_paint_at: float | None = None
        self.title = f"normx view — {self.data.name}"

    # -- layout ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(MainScreen())
        self.call_after_refresh(self.first_show)
        if self.refresh_s:
            self.set_interval(self.refresh_s, self.tick)

    @property
    def main(self) -> MainScreen:
        return next(s for s in self.screen_stack if isinstance(s, MainScreen))

    @property
    def table(self) -> TrialsTable:
        return self.main.query_one(TrialsTable)

    def visible_rows(self) -> list[TrialRow]:
        table = self.table
        return self.data.select(self.filter_text, table.sort_key, table.reverse)

    def first_show(self) -> None:
        self.show_data()
        self.table.focus()
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        self.first_paint_at = time.perf_counter()  # the first screen with data is on the terminal

    def show_data(self) -> None:
        """Redraw everything from ``self.data``."""
        main = self.main
        main.query_one("#summary", Static).update(summary_text(self.data.name, self.data.summary(), self.data.objectives))
        self.table.set_rows(self.visible_rows(), self.size.width)
        for plot in main.query(PlotView):
            plot.refresh()

    def make_tradeoff_plot(self):
        return tradeoff_plot(self.data, selected=self.table.current_number())

    def make_predictor_plot(self):
        return predictor_plot(self.data, self.predictor, self.outcome)

    def on_resize(self, event: Resize) -> None:
        if any(isinstance(s, MainScreen) for s in self.screen_stack):
            table = self.table
            if table.columns and table.spec_width(event.size.width) != table._spec_width:
                table.set_rows(self.visible_rows(), event.size.width)

    # -- data -----------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.load_in_background()

    def tick(self) -> None:
        """The periodic refresh: every tick while trials run, every 6th once the study is idle."""
        self._ticks += 1
        if self.data.is_running or self._ticks % 6 == 0:
            self.load_in_background()

    @work(thread=True, exclusive=True, group="load")
    def load_in_background(self) -> None:
        try:
            data = self.source.load()
        except Exception as err:  # noqa: BLE001 - a locked database or a dropped connection: keep what is shown
            message = mask_password(" ".join(str(err).split()))[:200] or type(err).__name__
            self.call_from_thread(self.notify, f"reload failed: {message}", severity="warning", timeout=5)
            return
        self.call_from_thread(self.apply_data, data)

    def apply_data(self, data: StudyData) -> None:
        changed = fingerprint(data) != fingerprint(self.data)
        self.data = data
        if changed:  # rebuilding thousands of rows only when something happened
            self.show_data()

    # -- keys -----------------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_focus_filter(self) -> None:
        if isinstance(self.screen, MainScreen):
            self.main.query_one(TabbedContent).active = "trials"
            self.main.query_one("#filter", Input).focus()

    def action_focus_table(self) -> None:
        if isinstance(self.screen, MainScreen):
            self.table.focus()

    def action_tab(self, tab: str) -> None:
        if isinstance(self.screen, MainScreen):
            self.main.query_one(TabbedContent).active = tab
            if tab == "trials":
                self.table.focus()
            else:
                self.set_focus(None)  # keys (p, o, 1-3) go to the app, not to a hidden input

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        table = self.table
        if reverse is None:
            reverse = not table.reverse if key == table.sort_key else key in ("test_accuracy", "mean_train_accuracy")
        table.sort_key, table.reverse = key, reverse
        table.set_rows(self.visible_rows(), self.size.width)

    def action_next_sort(self) -> None:
        keys = list(TABLE_COLUMNS)
        self.sort_by(keys[(keys.index(self.table.sort_key) + 1) % len(keys)], reverse=False)

    def action_reverse_sort(self) -> None:
        self.sort_by(self.table.sort_key, not self.table.reverse)

    def action_next_predictor(self) -> None:
        """The predictor tab's next predictor: every scalar predictor the study holds, a plugin's too."""
        names = self.data.scalar_predictors
        self.predictor = names[(names.index(self.predictor) + 1) % len(names)] if self.predictor in names else names[0]
        self.main.query_one("#predictor-plot", PlotView).refresh()

    def action_toggle_outcome(self) -> None:
        self.outcome = "mean_train_accuracy" if self.outcome == "test_accuracy" else "test_accuracy"
        self.main.query_one("#predictor-plot", PlotView).refresh()

    @on(DataTable.HeaderSelected)
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.open_trial(int(event.row_key.value))

    @on(DataTable.RowHighlighted)
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        for screen in self.screen_stack:  # the selected trial is marked in the trade-off plot
            if isinstance(screen, MainScreen):
                for plot in screen.query("#tradeoff-plot"):  # empty while the app shuts down
                    plot.refresh()

    def open_trial(self, number: int) -> None:
        row = self.data.row(number)
        if row is not None:
            self.push_screen(TrialScreen(row, self.data))

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.table.set_rows(self.visible_rows(), self.size.width)

    @on(Input.Submitted, "#filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()


def fingerprint(data: StudyData) -> tuple:
    """What the screen shows of a study, to skip redrawing an unchanged one."""
    return tuple((r.number, r.state, r.stage, r.step, r.values, len(r.user_attrs)) for r in data.rows)


def run_viewer(storage_url: str, study_name: str, refresh_s: float | None = 5.0, **app_kwargs: Any) -> None:
    """Open the viewer on a study (errors about the storage or the name raise before the screen opens)."""
    source = StudySource(storage_url, study_name)
    StudyApp(source, refresh_s=refresh_s, **app_kwargs).run()
