"""Figures drawn with matplotlib, for files rather than the terminal: the paper-style figures of
``normx reproduce`` (:mod:`~explorer.plots.claim_figures`) and a study's figures of ``normx report
--plots`` (:mod:`~explorer.plots.study_figures`), on the shared canvas of :mod:`~explorer.plots.canvas`.

A package of its own, beside ``explorer.tui`` (the terminal) and below ``explorer.cli`` (which
imports it only when a command draws): it reads the core's claim results and the search layer's read
side (``explorer.search.results``, ``explorer.search.validation``), never textual, rich or the CLI.
Matplotlib is an optional extra (``pip install 'norm-explorer[plots]'``): this package imports
nothing, and importing one of its modules without matplotlib raises ImportError, which the CLI turns
into a one-line hint.
"""
