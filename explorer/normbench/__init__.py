"""NormBench: every composition of a space trained once, so that any search can be replayed in seconds.

A table (:mod:`explorer.normbench.table`) holds, per distinct composition, every predictor at
initialization with what screening cost, and one training run's learning curve at fixed
checkpoints with what training cost, plus the seed noise of a sample retrained with more seeds.
:mod:`~explorer.normbench.build` makes one from a study file (as Optuna studies: resumable, with
workers), :mod:`~explorer.normbench.replay` runs search strategies on it by lookup, through the
same decision functions the study worker calls, side by side with what an Optuna user would run.

``load`` and ``list_tables`` read the committed tables without importing optuna or torch.
"""

from __future__ import annotations

from explorer.normbench.table import Row, Table, TableError, list_tables, load

__all__ = ["Row", "Table", "TableError", "list_tables", "load"]
