"""Figure 5 of Lubana et al. at scale: how well each predictor at initialization ranks a table's
compositions by their trained outcome.

The paper related cosine similarity to optimization speed over 15 normalizers; a table has every
composition of a space. Each scalar predictor, the combined score and ``parameter_count`` (the
baseline most zero-cost proxies only tie) get Kendall's τ and Spearman's ρ, with bootstrap
intervals, against the final test accuracy and against speed (the mean training accuracy of the
run), signed so that a positive value means the predictor ranks the way its direction claims.
The functions are :mod:`explorer.search.validation`'s, the ones ``normx study validate`` uses.
"""

from __future__ import annotations

import math
from typing import Any

from explorer.direction import Direction
from explorer.normbench.table import Table
from explorer.search.combined import COMBINED, COMBINED_PREDICTORS, combined_rank_score
from explorer.search.validation import correlate

__all__ = ["OUTCOMES", "correlations"]

#: what a predictor is related to: the final test accuracy, and the paper's speed
OUTCOMES: tuple[str, ...] = ("test_accuracy", "mean_train_accuracy")


def correlations(table: Table, n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """One entry per predictor (the combined score last), each with its τ and ρ against every
    outcome and how many compositions had a finite value; strongest against accuracy first."""
    rows = [r for r in table.trained if not r.diverged]
    columns: dict[str, list[float]] = {n: [r.predictors.get(n, math.nan) for r in rows] for n in table.predictor_names()}
    directions = {n: Direction.parse(next((r.directions.get(n) for r in rows if r.directions.get(n)), None))
                  for n in columns}
    if all(p in columns for p in COMBINED_PREDICTORS):
        columns[COMBINED] = combined_rank_score([r.record() for r in rows], COMBINED_PREDICTORS)
        directions[COMBINED] = Direction.LOWER
    out = []
    for name, values in columns.items():
        entry: dict[str, Any] = {"predictor": name, "direction": str(directions[name] or "")}
        for outcome in OUTCOMES:
            pairs = [(x, getattr(r, outcome)) for x, r in zip(values, rows)
                     if math.isfinite(x) and math.isfinite(getattr(r, outcome))]
            if len(pairs) < 3 or len({p[0] for p in pairs}) < 2:
                entry[outcome] = {"n": len(pairs), "kendall_tau": None, "spearman_rho": None}
                continue
            result = correlate([p[0] for p in pairs], [p[1] for p in pairs], n_boot=n_boot, seed=seed)
            sign = -1.0 if directions[name] is Direction.LOWER else 1.0
            for key in ("kendall_tau", "spearman_rho"):  # positive: ranks the way the direction claims
                result[key] = {"value": sign * result[key]["value"],
                               "ci": sorted(sign * c for c in result[key]["ci"])}
            entry[outcome] = result
        out.append(entry)

    def strength(entry: dict[str, Any]) -> float:
        tau = (entry.get("test_accuracy") or {}).get("kendall_tau")
        return tau["value"] if tau and math.isfinite(tau["value"]) else -math.inf

    return sorted(out, key=strength, reverse=True)
