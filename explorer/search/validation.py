"""Which predictor can be trusted on this task? Rank correlations over a study's trained trials.

For every predictor a trial stored (the paper's, the zero-cost baselines, the parameter count,
a plugin's), the combined score (:mod:`explorer.search.combined`) and the learned score
(:mod:`explorer.search.learned`, scored out of fold: each trial by a model fitted on the other
folds' trials, never on itself), against each measure
(mean training accuracy: the paper's speed; test accuracy): Kendall's τ and Spearman's ρ, with
percentile bootstrap confidence intervals (trials resampled with replacement). Each predictor
says which way is better, so each correlation has an expected sign (a lower-is-better
predictor should correlate negatively with accuracy) and a verdict: ``agrees`` or ``reversed``
when the interval excludes 0, else ``chance`` (not distinguishable from chance). Predictors are
ranked by *strength*: τ against speed, signed so that positive means "ranks the way it claims".
Trials that reused another's results are left out: they are the same composition counted
twice. The trials are read through :class:`explorer.search.results.StudyData`, as the viewer
and the report read them.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
from scipy import stats

from explorer.errors import NormxError
from explorer.direction import Direction
from explorer.records import direction_of, predictor_value, scalar_predictors, to_float
from explorer.search.combined import COMBINED, COMBINED_PREDICTORS, combined_rank_score
from explorer.search.learned import LEARNED, MIN_TRIALS, cross_validated_scores, train_outcomes, training_objectives
from explorer.search.results import PREDICTORS, StudyData
from explorer.search.schema import TrialAttr
from explorer.search.screening import candidate_values

__all__ = ["COMBINED", "COMBINED_PREDICTORS", "MEASURES", "ValidationError", "combined_rank_score", "correlate",
           "learned_column", "trained_rows", "trained_trials", "validate_study"]

MEASURES = ("mean_train_accuracy", "test_accuracy")
#: The folds of the learned score's cross-validation.
LEARNED_FOLDS = 5
#: The verdict of a correlation whose interval includes 0, and what it means.
CHANCE = "chance"
CHANCE_TEXT = "not distinguishable from chance (the 95% interval includes 0)"
#: A verdict of its own: the trials cannot say (too few of them, too few distinct values, or a
#: bootstrap whose interval cannot be trusted), rather than a confident "agrees" or "reversed".
TOO_FEW = "too few"
#: the fewest trials a verdict rests on (on 3 or 4 the bootstrap repeats a handful of points)
MIN_JUDGED = 5
#: the fewest trials whose value differs from the predictor's most common one: a predictor that
#: varies in one or two trials ranks those against the rest, and its τ is theirs alone
MIN_DIFFERING = 3
#: above this share of constant resamples (no rank correlation) the percentile interval is biased
#: towards the varying ones and may exclude its own estimate: it is not reported as a verdict
MAX_DEGENERATE = 0.05


class ValidationError(NormxError):
    """Too few trained trials to correlate."""


def trained_trials(study: StudyData) -> list[tuple[int, dict[str, Any], dict[str, float]]]:
    """(number, stored predictors, measures) of every trained, non-duplicate trial whose
    measures are finite numbers."""
    out = []
    for t in study.rows:
        if t.state != "complete":
            continue
        attrs = t.user_attrs
        if TrialAttr.REUSED_FROM in attrs or not isinstance(attrs.get(TrialAttr.TRAIN), dict) \
                or not isinstance(attrs.get(TrialAttr.PREDICTORS), dict):
            continue  # a repeat, or no training run or predictors stored (a hand-made study)
        measures = {key: to_float(t.train.get(key)) for key in MEASURES}
        if all(v is not None and math.isfinite(v) for v in measures.values()):
            out.append((t.number, t.predictors, measures))  # type: ignore[arg-type]
    return out


def trained_rows(study: StudyData, predictors: tuple[str, ...] = PREDICTORS) -> list[dict[str, float]]:
    """:func:`trained_trials` as flat rows (``trial``, each of ``predictors``, the measures), for
    plots; a trial that lacks one of ``predictors`` is left out."""
    rows = []
    for number, stored, measures in trained_trials(study):
        values = {key: predictor_value(stored, key) for key in predictors}
        if all(v is not None for v in values.values()):
            rows.append({"trial": number, **values, **measures})  # type: ignore[dict-item]
    return rows


def correlate(x: list[float], y: list[float], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Kendall τ and Spearman ρ of (x, y) with bootstrap percentile intervals."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out: dict[str, Any] = {"n": len(xa)}
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(xa), size=(n_boot, len(xa)))
    degenerate = 0
    for name, fn in (("kendall_tau", stats.kendalltau), ("spearman_rho", stats.spearmanr)):
        value = float(fn(xa, ya)[0])
        boots = []
        for index in samples:
            xs, ys = xa[index], ya[index]
            if np.ptp(xs) == 0 or np.ptp(ys) == 0:
                degenerate += name == "kendall_tau"
                continue  # a resample with one distinct value has no rank correlation
            boots.append(float(fn(xs, ys)[0]))
        boots = [b for b in boots if math.isfinite(b)]
        low = high = float("nan")
        if boots:
            low, high = (float(v) for v in np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2]))
        out[name] = {"value": value, "ci": [low, high]}
    out["degenerate_share"] = degenerate / max(1, n_boot)
    return out


def judged(xs: list[float], ys: list[float], n_boot: int, seed: int) -> dict[str, Any]:
    """:func:`correlate`, or why the trials cannot be judged (:data:`TOO_FEW`, with a ``note``):
    fewer than :data:`MIN_JUDGED` trials, a predictor differing from its most common value in
    fewer than :data:`MIN_DIFFERING`, or an interval from too many constant resamples or one that
    excludes its own estimate (ties make the percentile bootstrap unreliable)."""
    differing = len(xs) - max(Counter(xs).values())
    if differing < MIN_DIFFERING:
        return {"n": len(xs), "kendall_tau": None, "spearman_rho": None, "too_few": True,
                "note": f"too few distinct values to judge ({differing} trial(s) differ from the rest)"}
    result = correlate(xs, ys, n_boot=n_boot, seed=seed)
    tau = result["kendall_tau"]
    low, high = tau["ci"]
    if len(xs) < MIN_JUDGED:
        result.update(too_few=True, note=f"{len(xs)} trials, fewer than {MIN_JUDGED}: too few to judge")
    elif result["degenerate_share"] > MAX_DEGENERATE:
        result.update(too_few=True, note=f"{100 * result['degenerate_share']:.0f} % of the resamples are constant: "
                                         "too few distinct values to judge")
    elif not (low <= tau["value"] <= high):
        result.update(too_few=True, note="the interval excludes its own estimate (ties): too few to judge")
    return result


def correlation_verdict(result: dict[str, Any], direction: Direction | None) -> str | None:
    """``agrees``/``reversed`` when τ's interval excludes 0 (as the direction expects, or
    against it), ``chance`` when it includes 0; None without a correlation."""
    if result.get("too_few"):
        return TOO_FEW
    tau = result.get("kendall_tau")
    if not tau:
        return None
    low, high = tau["ci"]
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 <= high:
        return CHANCE
    expected = -1 if direction == Direction.LOWER else 1
    return "agrees" if math.copysign(1, tau["value"]) == expected else "reversed"


def strength(result: dict[str, Any], direction: Direction | None) -> float:
    """τ signed so that positive means the predictor ranks the way its direction claims."""
    tau = result.get("kendall_tau")
    if not tau or not math.isfinite(tau["value"]):
        return -math.inf
    return -tau["value"] if direction == Direction.LOWER else tau["value"]


def learned_column(study: StudyData, numbers: list[int],
                   min_trials: int = MIN_TRIALS) -> tuple[list[float | None] | None, str]:
    """The learned score of the trials ``numbers`` (the trained ones validated), out of fold
    (:data:`LEARNED_FOLDS`-fold cross-validation), and a note saying how, or why there is none. Its
    features are ranked among every distinct trial screened, as the screening policy ranks them;
    its target is the study's training objectives."""
    pool, outcomes, index = [], [], {}
    wanted = set(numbers)
    for t in study.rows:
        if not isinstance(t.user_attrs.get(TrialAttr.PREDICTORS), dict) or TrialAttr.REUSED_FROM in t.user_attrs:
            continue
        index[t.number] = len(pool)
        pool.append(candidate_values(t.predictors))
        outcomes.append(train_outcomes(t.train) if t.number in wanted else None)
    objectives = training_objectives({o.name: o.direction.optuna for o in study.objectives})
    scores, note = cross_validated_scores(pool, outcomes, objectives, folds=LEARNED_FOLDS, min_trials=min_trials)
    if scores is None:
        return None, note
    return [scores[index[n]] for n in numbers], note


def validate_study(study: StudyData, n_boot: int = 1000, seed: int = 0,
                   combined: tuple[str, ...] = COMBINED_PREDICTORS) -> dict[str, Any]:
    """Every stored predictor's (and the combined and learned scores') correlations with each
    measure, ranked by strength against speed; needs 3 trained trials."""
    trials = trained_trials(study)
    if len(trials) < 3:
        raise ValidationError(f"study {study.name!r} has {len(trials)} trained trial(s) with finite "
                              "measures; correlations need at least 3")
    records = [p for _, p, _ in trials]
    names = list(dict.fromkeys(n for r in records for n in scalar_predictors(r)))
    columns: dict[str, list[float | None]] = {n: [predictor_value(r, n) for r in records] for n in names}
    directions: dict[str, Direction | None] = {n: next((d for d in (direction_of(r, n) for r in records) if d), None)
                                         for n in names}
    if all(part in names for part in combined):
        columns[COMBINED] = list(combined_rank_score(records, combined))
        directions[COMBINED] = Direction.LOWER
        names.append(COMBINED)
    learned_scores, learned_note = learned_column(study, [number for number, _, _ in trials])
    columns[LEARNED] = learned_scores or [None] * len(trials)
    directions[LEARNED] = Direction.LOWER
    names.append(LEARNED)
    groups = []
    for name in names:
        pairs = []
        for measure in MEASURES:
            points = [(x, m[measure]) for x, (_, _, m) in zip(columns[name], trials)
                      if x is not None and math.isfinite(x)]
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            result: dict[str, Any]
            if name == LEARNED and learned_scores is None:
                result = {"n": 0, "kendall_tau": None, "spearman_rho": None, "note": "too few"}
            elif len(points) < 3:
                result = {"n": len(points), "kendall_tau": None, "spearman_rho": None,
                          "note": "fewer than 3 finite values"}
            elif len(set(xs)) < 2 or len(set(ys)) < 2:
                result = {"n": len(points), "kendall_tau": None, "spearman_rho": None, "note": "constant values"}
            else:
                result = judged(xs, ys, n_boot, seed)
            pairs.append({"predictor": name, "measure": measure, "direction": directions[name], **result,
                          "verdict": correlation_verdict(result, directions[name])})
        groups.append(pairs)
    groups.sort(key=lambda g: (strength(g[0], g[0]["direction"]), strength(g[1], g[1]["direction"])), reverse=True)
    ranking = []
    for g in groups:
        value = strength(g[0], g[0]["direction"])
        ranking.append({"predictor": g[0]["predictor"], "direction": g[0]["direction"],
                        "strength": value if math.isfinite(value) else None, "verdict": g[0]["verdict"]})
    chance = [f"{p['predictor']} vs {p['measure']}" for g in groups for p in g if p["verdict"] == CHANCE]
    return {"study": study.name, "trials": len(trials), "bootstrap": n_boot,
            "pairs": [p for g in groups for p in g], "ranking": ranking,
            "combined": {"predictors": list(combined) if COMBINED in names else [],
                         "definition": "mean of the percentile ranks (0 best) of " + " and ".join(combined)},
            "learned": {"definition": "a model of the trained trials' percentile ranks (explorer.search.learned), "
                                      "each trial scored out of fold", "note": learned_note},
            "chance": chance, "chance_means": CHANCE_TEXT}
