"""Does a learned screening score transfer? Leave one table out.

For each table, the learned score (:mod:`explorer.search.learned`) is fitted on every *other*
table's rows only, and scores the held-out table's compositions; its Kendall τ and Spearman ρ
against the held-out final test accuracy stand next to every single predictor's, the combined
score's and ``parameter_count``'s on the same compositions (the trained, non-diverged ones, as
:func:`explorer.normbench.correlation.correlations` takes them), signed so that positive means the
score ranks the way its direction claims. A learned score that beats the best single predictor of
a table it never saw is worth its prior; one that does not says the tables disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from explorer.direction import Direction
from explorer.normbench.table import Table, TableError, list_tables, load
from explorer.search.combined import COMBINED, COMBINED_PREDICTORS, combined_rank_score
from explorer.search.learned import DEFAULT_OBJECTIVES, LEARNED, MIN_TRIALS, LearnedModel, feature_names, load_prior
from explorer.search.screening import candidate_values
from explorer.search.validation import correlate

__all__ = ["held_out_scores", "leave_one_table_out"]


def held_out_scores(table: Table, prior_tables: Sequence[str],
                    min_trials: int = MIN_TRIALS) -> tuple[list[float] | None, str]:
    """The learned score of each trained, non-diverged composition of ``table`` (its rows' order),
    fitted on ``prior_tables``' rows only, its features ranked within ``table``'s buildable
    compositions; None with the reason when the other tables hold fewer than ``min_trials`` rows."""
    if not prior_tables:
        return None, "learned score: no other table to learn from"
    prior = load_prior(list(prior_tables), DEFAULT_OBJECTIVES)
    if len(prior.examples) < min_trials:
        return None, (f"learned score: {len(prior.examples)} trained rows in the other tables, fewer than "
                      f"{min_trials}")
    rows = [r for r in table.rows if r.invalid is None]
    pool = [candidate_values(r.record()) for r in rows]
    names = feature_names(prior.examples, pool)
    if not names:
        return None, "learned score: the other tables share no predictor with this one"
    scores = LearnedModel(names, prior.examples).score(pool)
    return [s for s, r in zip(scores, rows) if r.trained and not r.diverged], \
        f"fitted on {len(prior.examples)} rows of {', '.join(prior_tables)}"


def _entry(name: str, direction: Direction | None, values: Sequence[float], accuracy: Sequence[float],
           n_boot: int, seed: int) -> dict[str, Any]:
    """τ and ρ of ``values`` against ``accuracy``, signed (+: ranks as ``direction`` claims)."""
    pairs = [(x, y) for x, y in zip(values, accuracy) if math.isfinite(x) and math.isfinite(y)]
    entry: dict[str, Any] = {"score": name, "direction": str(direction or ""), "n": len(pairs)}
    if len(pairs) < 3 or len({p[0] for p in pairs}) < 2:
        return {**entry, "kendall_tau": None, "spearman_rho": None, "note": "too few distinct values"}
    result = correlate([p[0] for p in pairs], [p[1] for p in pairs], n_boot=n_boot, seed=seed)
    sign = -1.0 if direction is Direction.LOWER else 1.0
    for key in ("kendall_tau", "spearman_rho"):
        entry[key] = {"value": sign * result[key]["value"], "ci": sorted(sign * c for c in result[key]["ci"])}
    return entry


def _tau(entry: dict[str, Any]) -> float:
    tau = entry.get("kendall_tau")
    return tau["value"] if tau and math.isfinite(tau["value"]) else -math.inf


def leave_one_table_out(names: Sequence[str] | None = None, n_boot: int = 200, seed: int = 0,
                        min_trials: int = MIN_TRIALS) -> list[dict[str, Any]]:
    """Each of ``names`` (committed names or table files; default: every committed table) held out
    in turn: the learned score fitted on all the *other* named tables' rows, against every single
    predictor, the combined score and ``parameter_count`` on the held-out table. One entry per table:
    its scores strongest first, the learned one's entry and the best single predictor's name."""
    chosen = list(dict.fromkeys(names)) if names else list_tables()
    if not chosen:
        raise TableError("no table is installed (normx table build makes one)")
    tables = {name: load(name) for name in chosen}
    out = []
    for name, table in tables.items():
        others = [n for n in chosen if n != name]
        rows = [r for r in table.trained if not r.diverged]
        accuracy = [r.test_accuracy for r in rows]
        entries = []
        for predictor in table.predictor_names():
            direction = Direction.parse(next((r.directions.get(predictor) for r in rows
                                              if r.directions.get(predictor)), None))
            if direction is None:
                continue
            values = [r.predictors.get(predictor, math.nan) for r in rows]
            entries.append({**_entry(predictor, direction, values, accuracy, n_boot, seed), "kind": "predictor"})
        if rows and all(p in table.predictor_names() for p in COMBINED_PREDICTORS):
            combined = combined_rank_score([r.record() for r in rows], COMBINED_PREDICTORS)
            entries.append({**_entry(COMBINED, Direction.LOWER, combined, accuracy, n_boot, seed), "kind": "combined"})
        scores, note = held_out_scores(table, others, min_trials)
        learned = ({**_entry(LEARNED, Direction.LOWER, scores, accuracy, n_boot, seed), "kind": "learned"}
                   if scores is not None else {"score": LEARNED, "direction": "lower", "n": 0, "kendall_tau": None,
                                               "spearman_rho": None, "kind": "learned"})
        learned["note"] = note
        entries.append(learned)
        entries.sort(key=_tau, reverse=True)
        singles = [e for e in entries if e["kind"] == "predictor" and e.get("kendall_tau")]
        out.append({"table": table.name, "trained_on": others, "n": len(rows), "scores": entries, "learned": learned,
                    "best_single": max(singles, key=_tau)["score"] if singles else None})
    return out

