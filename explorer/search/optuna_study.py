"""The Optuna study of a study file: its sampler, its creation (baselines enqueued), its budget.

The study-wide budget counts distinct compositions: a trial holds a place when it is complete,
pruned, running, or failed with an error (an error is a result: retrying it forever would never
end the study), and only when no earlier such trial has its composition. Interrupted trials and
trials whose worker died are retried, so they do not count. Nor does a repeat (``reused_from``):
its source holds the composition's place, and when the source is lost or interrupted the place
is free again for the source's retry.

The writing side of a study, used by the runner and its workers; the study as its readers see it
is :mod:`explorer.search.results.study_data`, the ``normx study`` commands :mod:`explorer.cli.study`.
"""

from __future__ import annotations

import json
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from explorer import __version__
from explorer.errors import NormxError, shorten
from explorer.search.schema import Stage, StudyAttr, TrialAttr
from explorer.search.storage import mask_password
from explorer.search.study_file import StudyConfig, locate


class StudyMismatchError(NormxError):
    """The study exists in the storage with other objectives, or other settings that change what a
    trial measures (:meth:`StudyConfig.comparable_settings`), than the study file asks for."""


def make_sampler(config: StudyConfig, worker_index: int = 0) -> BaseSampler:
    """The study file's sampler, seeded by the study's seed (each worker process its own seed)."""
    seed = config.seed + 1000 * worker_index
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


def create_or_load_study(config: StudyConfig, storage: BaseStorage, sampler: BaseSampler | None = None,
                         choices: dict[str, list[Any]] | None = None) -> tuple[optuna.Study, bool]:
    """The study named by the file, created with its baselines enqueued if it does not exist yet.

    Returns (study, created). An existing study with other objectives, other settings that change
    what a trial measures, or (given the space's ``choices``) other choices for a parameter its
    trials drew is a StudyMismatchError.
    """
    wanted = [{"name": k, "direction": v} for k, v in config.objectives.items()]
    try:
        study = optuna.load_study(study_name=config.name, storage=storage, sampler=sampler)
    except KeyError:
        study = None
    if study is not None:
        stored = study.user_attrs.get(StudyAttr.OBJECTIVES)
        if stored is not None and stored != wanted:
            shown = ", ".join(f"{o['name']} ({o['direction']})" for o in stored)
            raise StudyMismatchError(
                f"study {config.name!r} already exists with objectives {shown}; rename the study "
                "(name = ...) or use another storage")
        results = any(holds_a_place(t) for t in study.get_trials(deepcopy=False))
        if results:  # a study without any result yet (every trial interrupted) takes the file's settings
            check_comparable(config, study.user_attrs)
        if choices is not None:
            check_same_choices(config, study, choices)
        text = study.user_attrs.get(StudyAttr.STUDY_FILE)
        if isinstance(text, str) and mask_password(text) != text:  # stored by a version that kept passwords
            study.set_user_attr(StudyAttr.STUDY_FILE, mask_password(text))
        settings = comparable_settings(config)
        if study.user_attrs.get(StudyAttr.SETTINGS) != settings and \
                (not results or not isinstance(study.user_attrs.get(StudyAttr.SETTINGS), dict)):
            study.set_user_attr(StudyAttr.SETTINGS, settings)  # no result yet, or created by an earlier version
        return study, False
    try:
        study = optuna.create_study(study_name=config.name, storage=storage, sampler=sampler,
                                    directions=config.directions)
    except optuna.exceptions.DuplicatedStudyError:  # another worker created it first
        return optuna.load_study(study_name=config.name, storage=storage, sampler=sampler), False
    study.set_user_attr(StudyAttr.NORMX_VERSION, __version__)
    study.set_user_attr(StudyAttr.STUDY_FILE, mask_password(config.text))  # readable by anyone who reads the study
    study.set_user_attr(StudyAttr.OBJECTIVES, wanted)
    study.set_user_attr(StudyAttr.MODELS, list(config.models))
    study.set_user_attr(StudyAttr.DATA, config.data.name)
    study.set_user_attr(StudyAttr.SETTINGS, comparable_settings(config))
    for preset in config.space.presets:
        study.enqueue_trial({}, user_attrs={TrialAttr.BASELINE: preset})
    return study, True


def comparable_settings(config: StudyConfig) -> dict[str, Any]:
    """The settings a resumed study must keep, as the storage holds them (JSON: tuples are lists)."""
    return json.loads(json.dumps(config.comparable_settings()))


def check_comparable(config: StudyConfig, attrs: dict[str, Any]) -> None:
    """Refuse to resume a study whose stored settings (``attrs``, its user attributes) differ from
    the file's in a way that changes what a trial measures: one line naming the first difference.

    A study created before the settings were stored is checked on what it stored then (models, data)."""
    stored = attrs.get(StudyAttr.SETTINGS)
    if not isinstance(stored, dict):
        earlier = {"models": attrs.get(StudyAttr.MODELS), "data.name": attrs.get(StudyAttr.DATA)}
        stored = {key: value for key, value in earlier.items() if value is not None}
    wanted = comparable_settings(config)
    differ = [key for key, value in wanted.items() if key in stored and stored[key] != value]
    if not differ:
        return
    key = differ[0]
    path = tuple(key.split("."))
    others = f" (and {', '.join(differ[1:])})" if len(differ) > 1 else ""
    raise StudyMismatchError(
        f"{config.path}:{locate(config.text, path)}: {key}: study {config.name!r} was run with {key} = "
        f"{_shown(stored[key])}; this file says {_shown(wanted[key])}{others}: its trials would not be comparable "
        "with the earlier ones; use a new study name (name = ...) or another storage")


def check_same_choices(config: StudyConfig, study: optuna.Study, choices: dict[str, list[Any]]) -> None:
    """Refuse to resume a study whose space now offers other choices for a parameter its trials
    drew (``choices``: :meth:`SearchSpace.choices`): Optuna fails every such trial ("CategoricalDistribution
    does not support dynamic value space"), and each one would take a place in the budget. A new
    slot or parameter is fine; a space that asks less is fine too."""
    drawn: dict[str, list[Any]] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, distribution in trial.distributions.items():
            drawn.setdefault(name, list(getattr(distribution, "choices", ())))
    for name, now in choices.items():
        if name in drawn and drawn[name] != now:
            path = ("space", "slots", name) if "." not in name else ("space", "params", name.rsplit(".", 1)[1])
            raise StudyMismatchError(
                f"{config.path}:{locate(config.text, path)}: space: study {config.name!r} drew {name} from "
                f"{_shown(drawn[name])}; this file (with the plugins installed now) offers {_shown(now)}: an Optuna "
                "study keeps a parameter's choices for its whole life; use a new study name (name = ...) or "
                "another storage")


def _shown(value: Any) -> str:
    """A setting as the study file writes it (``["cnn10"]``, ``0.1``, ``true``), ``not set`` for None."""
    return "not set" if value is None else shorten(json.dumps(value, ensure_ascii=False), 200)


def composition_key(attrs: dict) -> str | None:
    """What makes two trials the same composition: the equivalence key, else the (invalid) spec text."""
    key = attrs.get(TrialAttr.EQUIVALENCE_KEY) or attrs.get(TrialAttr.SPEC)
    return str(key) if key is not None else None


def holds_a_place(trial: FrozenTrial) -> bool:
    """A result (complete, pruned, failed with an error) or a trial still running, that is not a
    repeat of an earlier trial.

    A repeat (``reused_from``) holds no place of its own: its source does. A repeat pruned as
    "same composition as trial N, still running" would otherwise keep the composition's place
    after trial N is lost, and N's retry would wait for ever behind a budget that looks spent."""
    if TrialAttr.REUSED_FROM in trial.user_attrs:
        return False
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get(TrialAttr.STAGE) == Stage.FAILED


def budget_counts(study: optuna.Study) -> tuple[int, int, int]:
    """(distinct compositions holding a place in the budget, running trials, waiting trials).

    The budget counts compositions, not trials: a trial that repeats an earlier composition (same
    equivalence key) adds nothing. A running trial whose composition is not known yet counts as a
    new one until it is, so several workers never overshoot the budget."""
    keys: set[str] = set()
    unknown = running = waiting = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            waiting += 1
            continue
        if not holds_a_place(t):
            continue
        running += t.state == TrialState.RUNNING
        key = composition_key(t.user_attrs)
        if key is None:
            unknown += 1
        else:
            keys.add(key)
    return len(keys) + unknown, running, waiting


def state_counts(study: optuna.Study) -> dict[str, int]:
    """How many trials the study has in each state (``COMPLETE``, ``PRUNED``, ...)."""
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out
