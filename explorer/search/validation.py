"""Can the init predictors be trusted on this task? Rank correlations over a study's trained trials.

For each predictor (cosine similarity, explosion exponent, stable rank) and each measure
(mean training accuracy: the paper's speed; test accuracy): Kendall's τ and Spearman's ρ, with
percentile bootstrap confidence intervals (trials resampled with replacement). Trials that reused
another's results are left out: they are the same composition counted twice. The trials are read
through :class:`explorer.search.results.StudyData`, as the viewer and the report read them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from explorer.errors import NormxError
from explorer.records import OBJECTIVE_PREDICTORS
from explorer.search.results import StudyData

PREDICTORS: tuple[str, ...] = tuple(OBJECTIVE_PREDICTORS)
MEASURES = ("mean_train_accuracy", "test_accuracy")


class ValidationError(NormxError):
    """Too few trained trials to correlate."""


def trained_rows(study: StudyData) -> list[dict[str, float]]:
    """One row per trained, non-duplicate, non-diverged trial: predictors and measures as floats."""
    rows = []
    for t in study.rows:
        if t.state != "complete":
            continue
        attrs = t.user_attrs
        if "reused_from" in attrs or "train" not in attrs or "predictors" not in attrs:
            continue
        row: dict[str, float] = {"trial": t.number}
        try:
            for key in PREDICTORS:
                row[key] = float(attrs["predictors"][key])
            for key in MEASURES:
                row[key] = float(attrs["train"][key])
        except (KeyError, TypeError, ValueError):
            continue
        if all(math.isfinite(v) for v in row.values()):
            rows.append(row)
    return rows


def correlate(x: list[float], y: list[float], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Kendall τ and Spearman ρ of (x, y) with bootstrap percentile intervals."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out: dict[str, Any] = {"n": len(xa)}
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(xa), size=(n_boot, len(xa)))
    for name, fn in (("kendall_tau", stats.kendalltau), ("spearman_rho", stats.spearmanr)):
        value = float(fn(xa, ya)[0])
        boots = []
        for index in samples:
            xs, ys = xa[index], ya[index]
            if np.ptp(xs) == 0 or np.ptp(ys) == 0:
                continue  # a resample with one distinct value has no rank correlation
            boots.append(float(fn(xs, ys)[0]))
        boots = [b for b in boots if math.isfinite(b)]
        low = high = float("nan")
        if boots:
            low, high = (float(v) for v in np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2]))
        out[name] = {"value": value, "ci": [low, high]}
    return out


def validate_study(study: StudyData, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Every (predictor, measure) pair's correlations for ``study``; needs 3 trained trials."""
    rows = trained_rows(study)
    if len(rows) < 3:
        raise ValidationError(f"study {study.name!r} has {len(rows)} trained trial(s) with finite "
                              "predictors; correlations need at least 3")
    pairs = []
    for predictor in PREDICTORS:
        for measure in MEASURES:
            xs = [r[predictor] for r in rows]
            ys = [r[measure] for r in rows]
            if len(set(xs)) < 2 or len(set(ys)) < 2:
                result: dict[str, Any] = {"n": len(rows), "kendall_tau": None, "spearman_rho": None,
                                          "note": "constant values"}
            else:
                result = correlate(xs, ys, n_boot=n_boot, seed=seed)
            pairs.append({"predictor": predictor, "measure": measure, **result})
    return {"study": study.name, "trials": len(rows), "bootstrap": n_boot, "pairs": pairs}
