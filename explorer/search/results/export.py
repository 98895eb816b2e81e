"""A study's report as data for other tools: ``normx report --json`` (:func:`report_data`) and
``--csv`` (:func:`report_csv`), one flat record per trial (:func:`row_record`).

Plain data read from :class:`~explorer.search.results.study_data.StudyData`, so it lives with the other
readers of a study rather than with the terminal code: no rich, no textual. The rich report that
prints the same study is ``explorer.cli.report``'s.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from explorer.records import json_safe
from explorer.search.results.rows import TrialRow
from explorer.search.results.study_data import StudyData
from explorer.search.schema import TrialAttr
from explorer.search.validation import ValidationError, validate_study


def validation_result(data: StudyData, resamples: int = 1000) -> dict[str, Any] | str:
    """Rank correlations of the init predictors with training speed and accuracy (the search layer's
    :func:`explorer.search.validation.validate_study`), or why there are none yet."""
    try:
        return json_safe(validate_study(data, n_boot=resamples))
    except ValidationError as err:
        return str(err)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan": as the trial schema stores them
    return value


def row_record(row: TrialRow, data: StudyData) -> dict[str, Any]:
    """A trial as a flat record (CSV row, JSON object): a column per scalar predictor the study
    holds (:attr:`StudyData.scalar_predictors`: the paper's, then the others, a plugin's included)."""
    record: dict[str, Any] = {"number": row.number, "state": row.state, "stage": row.stage, "spec": row.spec,
                              "pareto": row.pareto}
    for k, objective in enumerate(data.objectives):
        record[f"value_{objective.name}"] = _json_number(row.values[k]) if k < len(row.values) else None
    for key in data.scalar_predictors:
        record[key] = _json_number(row.value(key))
    record["variance_growth_kind"] = row.variance_growth_kind or None
    record["mean_train_accuracy"] = _json_number(row.mean_train_accuracy)
    record["test_accuracy"] = _json_number(row.test_accuracy)
    record["diverged"] = row.diverged if row.train else None
    record["reason"] = row.reason or None
    record["rung"] = row.rung
    screening = row.record.screening
    record["screening"] = screening.get("why") if screening is not None else None
    record["reused_from"] = row.reused_from
    record["worker"] = row.worker or None
    record["duration_s"] = round(row.duration_s, 3) if row.duration_s is not None else None
    return record


def report_data(data: StudyData, resamples: int = 1000) -> dict[str, Any]:
    """Everything in the report as JSON-serialisable data."""
    summary = data.summary()
    best = data.best()
    return {
        "study": data.name,
        "objectives": [{"name": o.name, "direction": o.direction.optuna} for o in data.objectives],
        "summary": {"counts": summary.counts, "total": summary.total, "finished": summary.finished,
                    "budget": summary.budget, "rate_per_min": summary.rate_per_min, "eta_s": summary.eta_s},
        "best": {name: {"number": row.number, "spec": row.spec,
                        "value": _json_number(row.values[[o.name for o in data.objectives].index(name)])}
                 for name, row in best.items()},
        "pareto": [row_record(r, data) for r in data.pareto_rows],
        "validation": validation_result(data, resamples),
        "trials": [{**row_record(r, data), **by_model(r)} for r in data.rows],
    }


def by_model(row: TrialRow) -> dict[str, Any]:
    """``{"by_model": {model: {"predictors": …, "train": …}}}`` for a trial of a study over several models
    (each transformer placement of ``studies/transformer_placement.toml``, say); ``{}`` otherwise."""
    predictors = row.user_attrs.get(TrialAttr.PREDICTORS_BY_MODEL)
    train = row.user_attrs.get(TrialAttr.TRAIN_BY_MODEL)
    predictors = predictors if isinstance(predictors, dict) else {}
    train = train if isinstance(train, dict) else {}
    if not predictors and not train:
        return {}
    models = dict.fromkeys([*predictors, *train])
    return {"by_model": {m: json_safe({"predictors": predictors.get(m), "train": train.get(m)})
                         for m in models}}


def report_csv(data: StudyData) -> str:
    """One CSV row per trial (the columns of :func:`row_record`)."""
    records = [row_record(r, data) for r in data.rows]
    out = io.StringIO()
    fields = list(row_record(data.rows[0], data)) if records else ["number", "state", "stage", "spec", "pareto"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return out.getvalue()

