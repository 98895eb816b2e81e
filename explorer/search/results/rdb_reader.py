"""Every trial of a study from an RDB storage in four plain queries, for the viewer's refreshes.

Optuna's ``get_all_trials`` builds an ORM object per row of every trial table and then a
validated ``FrozenTrial``; on a study of a few thousand trials that is most of the time the viewer
takes to open. Readers need no ORM state: this module reads the same tables (named by Optuna's own
models, so a renamed table or column fails loudly) with SQLAlchemy Core and builds light rows
(:class:`RawTrialRow`) with the attributes :func:`explorer.search.results.load_study` uses. A raw
row is what Optuna stored, before any decoding: the typed record of a trial's attributes is
:class:`explorer.search.schema.TrialRecord`, the flattened trial of the tables and plots
:class:`explorer.search.results.rows.TrialRow`.

Checked against Optuna 5.0.0 (RDB schema version 12, alembic revision ``v3.2.0.a``) with
SQLAlchemy 2.1: the tables ``trials``, ``trial_values``, ``trial_user_attributes`` and
``trial_params``, datetimes stored as naive UTC (Optuna 5's ``TrialModel._datetime_start_utc``) and
returned, as Optuna returns them, in naive local time. ``tests/test_tui_model.py`` checks that the
records equal ``get_all_trials``'s. Any other storage, any other Optuna major version or schema
version, or any surprise while reading falls back to ``get_all_trials``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import optuna
from optuna import distributions
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import select

try:  # Optuna's private table models: if a release moves them, every read falls back
    from optuna.storages._rdb import models
except ImportError:  # pragma: no cover - depends on the installed Optuna
    models = None

#: the Optuna major version and RDB schema version whose layout and meaning this reader was checked against
CHECKED_OPTUNA_MAJOR = 5
CHECKED_SCHEMA_VERSION = 12


@dataclass
class RawTrialRow:
    """The part of a ``FrozenTrial`` the readers use, as stored (user attributes undecoded)."""

    number: int
    state: TrialState
    datetime_start: datetime | None
    datetime_complete: datetime | None
    values: list[float] | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def fast_reader_applies(storage: BaseStorage) -> bool:
    """Whether ``storage`` is an RDB storage whose stored layout this module was checked against."""
    return (isinstance(storage, RDBStorage) and models is not None
            and int(optuna.__version__.split(".")[0]) == CHECKED_OPTUNA_MAJOR
            and getattr(models, "SCHEMA_VERSION", None) == CHECKED_SCHEMA_VERSION
            and hasattr(models.TrialModel, "_datetime_start_utc"))


def read_trials(storage: BaseStorage, study_id: int) -> list[RawTrialRow] | list[FrozenTrial]:
    """The study's trials in number order: light records from an RDB storage, else FrozenTrials."""
    if fast_reader_applies(storage):
        try:
            return _read_rdb(storage, study_id)
        except Exception:  # noqa: BLE001 - an unexpected schema: Optuna's own (slower) reader
            pass
    return storage.get_all_trials(study_id, deepcopy=False)


def _local(utc: datetime | None) -> datetime | None:
    """A stored naive-UTC datetime in naive local time, as Optuna 5's ``FrozenTrial`` gives it."""
    return None if utc is None else utc.replace(tzinfo=timezone.utc).astimezone().replace(tzinfo=None)


def _read_rdb(storage: RDBStorage, study_id: int) -> list[RawTrialRow]:
    trials_t = models.TrialModel.__table__
    values_t = models.TrialValueModel.__table__
    attrs_t = models.TrialUserAttributeModel.__table__
    params_t = models.TrialParamModel.__table__
    of_study = select(trials_t.c.trial_id).where(trials_t.c.study_id == study_id)
    with storage.engine.connect() as connection:
        trials = connection.execute(
            select(trials_t.c.trial_id, trials_t.c.number, trials_t.c.state, trials_t.c.datetime_start,
                   trials_t.c.datetime_complete)
            .where(trials_t.c.study_id == study_id).order_by(trials_t.c.number)).all()
        values = connection.execute(
            select(values_t.c.trial_id, values_t.c.objective, values_t.c.value, values_t.c.value_type)
            .where(values_t.c.trial_id.in_(of_study))).all()
        attrs = connection.execute(
            select(attrs_t.c.trial_id, attrs_t.c.key, attrs_t.c.value_json)
            .where(attrs_t.c.trial_id.in_(of_study))).all()
        params = connection.execute(
            select(params_t.c.trial_id, params_t.c.param_name, params_t.c.param_value, params_t.c.distribution_json)
            .where(params_t.c.trial_id.in_(of_study)).order_by(params_t.c.param_id)).all()
    by_id: dict[int, RawTrialRow] = {}
    records = []
    for trial_id, number, state, start, complete in trials:
        state = state if not isinstance(state, str) else TrialState[state]
        record = RawTrialRow(number, state, _local(start), _local(complete))
        by_id[trial_id] = record
        records.append(record)
    objective_values: dict[int, dict[int, float]] = defaultdict(dict)
    for trial_id, objective, value, value_type in values:
        objective_values[trial_id][objective] = models.TrialValueModel.stored_repr_to_value(value, value_type)
    for trial_id, by_objective in objective_values.items():
        if trial_id in by_id:
            by_id[trial_id].values = [by_objective[k] for k in sorted(by_objective)]
    for trial_id, key, value_json in attrs:
        if trial_id in by_id:
            by_id[trial_id].user_attrs[key] = json.loads(value_json)
    parsed: dict[str, Any] = {}  # one distribution object per distinct JSON text
    for trial_id, name, value, distribution_json in params:
        if trial_id in by_id:
            dist = parsed.get(distribution_json)
            if dist is None:
                dist = parsed[distribution_json] = distributions.json_to_distribution(distribution_json)
            by_id[trial_id].params[name] = dist.to_external_repr(value)
    return records
