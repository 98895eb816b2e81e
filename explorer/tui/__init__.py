"""The terminal UI: the study viewer (``normx view``), the static report (``normx report``), live
progress while a study runs, and the rich components the CLI renders with.

Only this package and ``explorer.cli`` import rich and textual. What they show is read through
:mod:`explorer.search.results` (plain Python, tested without a terminal); this package only lays it out.
"""
