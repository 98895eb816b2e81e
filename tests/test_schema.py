"""docs/trial-schema.md and explorer.search.schema name the same keys; records survive storage."""

from __future__ import annotations

import json
import math
import re
from dataclasses import fields
from pathlib import Path

import pytest

from explorer.records import json_safe, to_float
from explorer.search import schema
from explorer.search.study_file import OBJECTIVE_NAMES

DOC = (Path(__file__).parent.parent / "docs" / "trial-schema.md").read_text()


def table(heading: str) -> dict[str, str]:
    """The rows of the table under ``heading``: first-column keys -> the last column."""
    section = DOC.split(heading, 1)[1].split("\n#", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]  # "\|" is no border
        if not line.startswith("|") or cells[0] in ("key", "---"):
            continue
        for key in re.findall(r"`([a-z_]+)`", cells[0]):
            rows[key] = cells[-1]
    return rows


def quoted(text: str) -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", text))


def test_study_attributes_agree():
    assert set(table("## Study user attributes")) == set(schema.STUDY_ATTRS)


def test_trial_attributes_agree():
    assert set(table("## Trial user attributes")) == set(schema.TRIAL_ATTRS)
    assert set(schema.TRIAL_ATTRS) == {f.name for f in fields(schema.TrialRecord)}


def test_stages_agree():
    assert quoted(table("## Trial user attributes")["stage"]) == set(schema.STAGES)


def test_train_keys_agree():
    assert quoted(table("## Trial user attributes")["train"]) == set(schema.TRAIN_KEYS)


def test_predictor_keys_agree():
    assert set(table("### `predictors`")) == set(schema.PREDICTOR_KEYS)
    growth = table("### `predictors`")["variance_growth"]
    assert set(re.findall(r'"([a-z]+)"', growth.split("kind", 1)[1].split("rate")[0])) == set(
        schema.VARIANCE_GROWTH_KINDS)


def test_objectives_read_keys_the_records_have():
    for name, (source, key, _) in OBJECTIVE_NAMES.items():
        assert source in (schema.TrialAttr.TRAIN, schema.TrialAttr.PREDICTORS)
        if source == schema.TrialAttr.PREDICTORS:
            assert key in schema.PREDICTOR_KEYS
        elif key != "final_loss":  # final_loss is the loss curve's last point
            assert key in schema.TRAIN_KEYS


def test_non_finite_floats_round_trip_through_json():
    stored = json.loads(json.dumps(json_safe({"a": [math.inf, -math.inf, math.nan, 1.5], "b": (1, True, None)})))
    assert stored == {"a": ["inf", "-inf", "nan", 1.5], "b": [1, True, None]}
    decoded = [to_float(v) for v in stored["a"]]
    assert decoded[:2] == [math.inf, -math.inf] and math.isnan(decoded[2]) and decoded[3] == 1.5
    assert to_float("abc") is None and to_float(None) is None and to_float(True) is None
    assert to_float(None, math.nan) != to_float(None, math.nan)  # the default, NaN


def test_trial_record_round_trips_through_storage_form():
    record = schema.TrialRecord(
        spec="mean(cx) | relu", stage=schema.Stage.DONE, step=3, steps=3,
        predictors=schema.Predictors(cosine_similarity=0.5, grad_explosion_exponent=math.inf, stable_rank=2.0,
                                     activation_variance=[1.0, math.nan], grad_norm=[1.0, 2.0],
                                     variance_growth={"kind": "linear", "rate": 0.1}, overflow=True,
                                     spread={"stable_rank": 0.0}),
        train=schema.TrainResult(loss_curve=[[1.0, 2.0], [2.0, math.nan]], test_accuracy=0.1, diverged=True,
                                 diverged_step=2, steps=2),
        reused_from=4, worker="host:1")
    attrs = json.loads(json.dumps(record.to_attrs()))
    assert "error" not in attrs and "train_by_model" not in attrs  # unset attributes are not stored
    assert attrs["predictors"]["grad_explosion_exponent"] == "inf"
    back = schema.TrialRecord.from_attrs(attrs)
    assert back.to_attrs() == attrs
    assert back.predictors.grad_explosion_exponent == math.inf and back.train.diverged_step == 2


def test_a_hand_made_trial_reads_as_blanks():
    record = schema.TrialRecord.from_attrs({"stage": "bogus", "predictors": "not a table", "step": "3"})
    assert record.stage is None and record.predictors is None and record.step is None


@pytest.mark.parametrize("stage", schema.STAGES)
def test_stages_are_plain_strings(stage):
    assert type(stage) is str
