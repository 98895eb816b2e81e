"""The terminal UI: the study viewer (``normx view``), the static report (``normx report``), live
progress while a study runs, and the rich components the CLI renders with.

Only this package and ``explorer.cli`` import rich and textual; :mod:`explorer.tui.model` and
:mod:`explorer.tui.storage` import neither, so the data model is testable without a terminal.
"""
