"""The learned screening score: rank a candidate by what the trials already trained say.

No single predictor at initialization ranks every task well (on digits at batch 8 the paper's
predictors rank backwards, `snip` ranks well; on digits at batch 64 it is the other way round),
so the relative policy can learn its score instead. Each training row is a trained candidate:

- **features**: each scalar predictor's percentile rank within the candidate's own pool (the
  candidates screened with it, in one study or one NormBench table), 0 lowest, 1 highest, ties
  sharing their mean rank. Ranks make tables and models of different scales comparable, and ±inf is
  just an extreme; a NaN or missing value is 0.5 (no information). The order is fixed: the sorted
  names present both in the fitting rows and in the pool being scored.
- **target**: the mean over the study's *training* objectives (test accuracy, mean training
  accuracy, final loss, wall time: predictor objectives are known at initialization and need no
  learning) of the candidate's percentile rank among the trained candidates of its pool, each in
  its objective's direction: 0 best, 1 worst. Lower is better, like every screening score.
- **model**: extremely randomized trees (scikit-learn's ``ExtraTreesRegressor``: 64 trees, 2
  samples a leaf, fixed seed, one thread). On the committed tables they ranked the held-out
  compositions as well as a random forest or better (5-fold and leave-one-table-out) and fit in
  half its time, which the replay pays at every refit.

Prior evidence (``[screening] prior``: NormBench tables, earlier studies as ``study:NAME``) adds
rows, each featurized and targeted within its own table or study. With fewer than ``min_trials``
trained rows (prior ones included) there is nothing to learn from, and the combined score is used,
said in the decision's reason.

The model in use is a pure function of the rows: with ``P`` prior rows and ``k`` of the study's own
trained candidates (in screening order), it is fitted on the first ``k_j`` of them, where the sizes
``k_j`` grow so that each fit has at least 25 % more rows than the last (:func:`fit_size`). So the
study worker and the replay (which asks thousands of times) take the same decisions, and a cache
keyed on those rows spares all but one fit per size.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from explorer.direction import Direction
from explorer.errors import NormxError, suggestion
from explorer.records import to_float
from explorer.search.combined import percentile_ranks

if TYPE_CHECKING:
    from explorer.normbench.table import Table

__all__ = ["LEARNED", "MIN_TRIALS", "REFIT_GROWTH", "TRAINING_MEASURES", "Example", "Learned", "LearnedModel",
           "Prior", "cross_validated_scores", "feature_ranks", "fit_size", "learned_scores",
           "load_prior", "outcome_targets", "pool_examples", "table_examples", "train_outcomes"]

LEARNED = "learned"
#: trained rows (prior ones included) below which the learned score falls back to the combined one
MIN_TRIALS = 8
#: the model is refitted once the rows it may learn from number this many times those of its last fit
REFIT_GROWTH = 1.25
#: the training measures a study's objectives may name, with the way each is better
TRAINING_MEASURES: dict[str, Direction] = {
    "test_accuracy": Direction.HIGHER, "mean_train_accuracy": Direction.HIGHER,
    "final_loss": Direction.LOWER, "wall_time_s": Direction.LOWER,
}
#: what the target is when a study names no training objective (a table's outcome)
DEFAULT_OBJECTIVES: tuple[tuple[str, Direction], ...] = (("test_accuracy", Direction.HIGHER),)
#: the prefix of an earlier study of the same storage in ``[screening] prior``
STUDY_PREFIX = "study:"
N_ESTIMATORS = 64
MIN_SAMPLES_LEAF = 2
RANDOM_STATE = 0
#: fitted models kept (the replay runs many arrival orders in one process; each has its own fits)
CACHE_SIZE = 64

#: predictor name -> value, as :func:`explorer.search.screening.candidate_values` returns them
Values = Mapping[str, "float | None"]
#: training measure -> value (None or NaN: not measured)
Outcome = Mapping[str, "float | None"]
Objectives = tuple[tuple[str, Direction], ...]


class PriorError(NormxError):
    """A ``[screening] prior`` that cannot be read."""


# --------------------------------------------------------------------------- features and targets


def _number(value: Any) -> float:
    number = to_float(value)
    return math.nan if number is None else number


def feature_ranks(pool: Sequence[Values], names: Sequence[str]) -> np.ndarray:
    """Each candidate's percentile rank within ``pool`` on each of ``names`` (rows x names), 0
    lowest, 1 highest, ties sharing their mean rank, ±inf an extreme; NaN or missing: 0.5, and so
    is every value of a column with fewer than two known values."""
    out = np.full((len(pool), len(names)), 0.5)
    for j, name in enumerate(names):
        column = np.array([_number(c.get(name)) for c in pool], dtype=float)
        known = ~np.isnan(column)
        count = int(known.sum())
        if count < 2:
            continue
        _, inverse, counts = np.unique(column[known], return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        mean_rank = (ends - counts + ends - 1) / 2  # 0-based, ties averaged
        out[known, j] = mean_rank[inverse] / (count - 1)
    return out


def train_outcomes(train: Mapping[str, Any] | None) -> dict[str, float] | None:
    """The training measures of a stored ``train`` record (docs/trial-schema.md), None without one:
    a diverged run's final loss is +inf, the worst."""
    if not isinstance(train, Mapping):
        return None
    curve = train.get("loss_curve") or []
    last = _number(curve[-1][1]) if curve and isinstance(curve[-1], (list, tuple)) else math.nan
    return {"test_accuracy": _number(train.get("test_accuracy")),
            "mean_train_accuracy": _number(train.get("mean_train_accuracy")),
            "final_loss": math.inf if train.get("diverged") else last,
            "wall_time_s": _number(train.get("wall_time_s"))}


def training_objectives(objectives: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> Objectives:
    """The training measures among a study's objectives (name -> "maximize"/"minimize"), in its
    order; the final test accuracy when it names none."""
    items = objectives.items() if isinstance(objectives, Mapping) else (objectives or [])
    out = tuple((name, Direction.of(words)) for name, words in items if name in TRAINING_MEASURES)
    return out or DEFAULT_OBJECTIVES


def outcome_targets(outcomes: Sequence[Outcome], objectives: Objectives) -> list[float] | None:
    """Each trained candidate's target: the mean over ``objectives`` of its percentile rank among
    ``outcomes``, in the objective's direction (0 best, 1 worst; NaN ranks worst). Objectives no
    outcome measured are left out; None when none was measured."""
    parts = []
    for name, direction in objectives:
        values = [to_float(o.get(name)) for o in outcomes]
        if all(v is None or math.isnan(v) for v in values):
            continue
        parts.append(percentile_ranks(values, direction))
    if not parts:
        return None
    return [sum(p[i] for p in parts) / len(parts) for i in range(len(outcomes))]


@dataclass(frozen=True)
class Example:
    """One training row: a trained candidate's feature ranks within its pool and its target."""

    features: Mapping[str, float]
    target: float


def pool_examples(pool: Sequence[Values], outcomes: Sequence[Outcome | None],
                  objectives: Objectives) -> list[Example]:
    """The trained candidates of one pool as training rows: features ranked within ``pool``,
    targets ranked among the candidates whose ``outcomes`` (aligned with ``pool``; None =
    untrained) are known."""
    trained = [i for i, o in enumerate(outcomes) if o is not None]
    if not trained:
        return []
    targets = outcome_targets([outcomes[i] for i in trained], objectives)  # type: ignore[misc]
    if targets is None:
        return []
    names = sorted({n for c in pool for n, v in c.items() if v is not None and not math.isnan(_number(v))})
    ranks = feature_ranks(pool, names)
    return [Example(dict(zip(names, ranks[i].tolist())), t) for i, t in zip(trained, targets)]


def table_examples(table: Table, objectives: Objectives) -> list[Example]:
    """A NormBench table's trained compositions as training rows, ranked within the table (its
    pool: every composition that could be built)."""
    from explorer.search.screening import candidate_values  # screening imports this module

    rows = [r for r in table.rows if r.invalid is None]
    return pool_examples([candidate_values(r.record()) for r in rows],
                         [r.outcomes() if r.trained else None for r in rows], objectives)


def study_examples(trials: Sequence[Any], objectives: Objectives) -> list[Example]:
    """A study's trials (Optuna's FrozenTrials) as training rows: every distinct screened
    composition is the pool, those with a stored training run the trained ones."""
    from explorer.search.schema import TrialAttr
    from explorer.search.screening import candidate_values

    pool, outcomes = [], []
    for t in trials:
        attrs = t.user_attrs
        if isinstance(attrs.get(TrialAttr.PREDICTORS), dict) and TrialAttr.REUSED_FROM not in attrs:
            pool.append(candidate_values(attrs[TrialAttr.PREDICTORS]))
            outcomes.append(train_outcomes(attrs.get(TrialAttr.TRAIN)))
    return pool_examples(pool, outcomes, objectives)


# --------------------------------------------------------------------------- prior evidence


@dataclass(frozen=True)
class Prior:
    """Training rows from elsewhere (tables, earlier studies), named by what they came from."""

    names: tuple[str, ...] = ()
    objectives: Objectives = DEFAULT_OBJECTIVES
    examples: tuple[Example, ...] = field(default=(), compare=False)

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.names, self.objectives)


NO_PRIOR = Prior()


def check_prior_names(names: Sequence[str]) -> str | None:
    """Why ``[screening] prior`` cannot be used (an unknown table, an empty study name), or None.
    Studies are checked against the storage when the study runs (:func:`check_prior_studies`)."""
    from explorer.normbench.table import list_tables  # the plain table reader (no optuna, no torch)

    tables = list_tables()
    for name in names:
        if name.startswith(STUDY_PREFIX):
            if not name[len(STUDY_PREFIX):].strip():
                return f"{name!r} names no study; write study:NAME"
        elif name not in tables and not (name.endswith(".jsonl") and _exists(name)):
            return f"unknown table {name!r}; {suggestion(name, [*tables, 'study:NAME'])}"
    return None


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_file()


def check_prior_studies(names: Sequence[str], storage: Any) -> str | None:
    """Why a ``study:NAME`` of ``[screening] prior`` is not in ``storage`` (an Optuna storage), or None."""
    import optuna

    wanted = [n[len(STUDY_PREFIX):] for n in names if n.startswith(STUDY_PREFIX)]
    if not wanted:
        return None
    known = optuna.get_all_study_names(storage=storage)
    for name in wanted:
        if name not in known:
            return f"unknown study {name!r} in the study's storage; {suggestion(name, known)}"
    return None


@lru_cache(maxsize=32)
def _table_prior(name: str, objectives: Objectives) -> tuple[Example, ...]:
    from explorer.normbench.table import load

    return tuple(table_examples(load(name), objectives))


#: (id of the storage, study, objectives) -> (the storage, kept so that its id is not reused; the rows)
_STUDY_PRIORS: dict[tuple[int, str, Objectives], tuple[Any, tuple[Example, ...]]] = {}


def _study_prior(name: str, objectives: Objectives, storage: Any) -> tuple[Example, ...]:
    """An earlier study's rows, read once per process (a study still running is read as it was)."""
    key = (id(storage), name, objectives)
    if key not in _STUDY_PRIORS:
        import optuna

        if storage is None:
            raise PriorError(f"prior {STUDY_PREFIX}{name}: a study prior is read from the study's own storage, "
                             "and there is none here")
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            raise PriorError(f"prior {STUDY_PREFIX}{name}: no such study in the study's storage") from None
        _STUDY_PRIORS[key] = (storage, tuple(study_examples(study.get_trials(deepcopy=False), objectives)))
    return _STUDY_PRIORS[key][1]


def load_prior(names: Sequence[str], objectives: Objectives, storage: Any = None) -> Prior:
    """The rows of every table and ``study:NAME`` named, each featurized and targeted within its
    own table or study (tables cached per process; ``storage``: the Optuna storage studies live in)."""
    rows: list[Example] = []
    for name in names:
        if name.startswith(STUDY_PREFIX):
            rows += _study_prior(name[len(STUDY_PREFIX):], objectives, storage)
        else:
            rows += _table_prior(name, objectives)
    return Prior(tuple(names), objectives, tuple(rows))


# --------------------------------------------------------------------------- the model


class LearnedModel:
    """Extremely randomized trees from feature ranks to the target; lower predictions are better.

    Prediction walks every tree at once on flat arrays (:meth:`predict`): the replay predicts a
    pool at each of thousands of decisions, and scikit-learn's per-tree dispatch costs more than
    the walk. It gives scikit-learn's own predictions (a test compares them)."""

    def __init__(self, names: Sequence[str], rows: Sequence[Example]):
        from sklearn.ensemble import ExtraTreesRegressor  # loaded only when a learned score is asked for

        self.names = tuple(names)
        self.size = len(rows)
        x = np.array([[r.features.get(n, 0.5) for n in self.names] for r in rows], dtype=float).reshape(len(rows), -1)
        y = np.array([r.target for r in rows], dtype=float)
        self.forest = ExtraTreesRegressor(n_estimators=N_ESTIMATORS, min_samples_leaf=MIN_SAMPLES_LEAF,
                                            random_state=RANDOM_STATE, n_jobs=1)
        self.forest.fit(x, y)
        self._flatten()

    def _flatten(self) -> None:
        """Every tree's nodes in one set of arrays; a leaf points to itself with an infinite
        threshold, so that walking past it stays on it."""
        trees = [e.tree_ for e in self.forest.estimators_]
        counts = np.array([t.node_count for t in trees])
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._roots = offsets
        features, thresholds, lefts, rights, values = [], [], [], [], []
        for tree, offset in zip(trees, offsets):
            own = np.arange(tree.node_count) + offset
            leaf = tree.children_left == -1
            features.append(np.where(leaf, 0, tree.feature))
            thresholds.append(np.where(leaf, np.inf, tree.threshold))
            lefts.append(np.where(leaf, own, tree.children_left + offset))
            rights.append(np.where(leaf, own, tree.children_right + offset))
            values.append(tree.value[:, 0, 0])
        self._feature = np.concatenate(features).astype(np.intp)
        self._threshold = np.concatenate(thresholds)
        self._left = np.concatenate(lefts).astype(np.intp)
        self._right = np.concatenate(rights).astype(np.intp)
        self._value = np.concatenate(values)
        self._depth = max(t.max_depth for t in trees)

    def predict(self, features: np.ndarray) -> list[float]:
        """The predicted targets of rows of feature ranks (columns in :attr:`names` order)."""
        n = len(features)
        if n == 0:
            return []
        # scikit-learn compares float32 inputs with its float64 thresholds
        x = np.asarray(features, dtype=np.float32).astype(np.float64).ravel()
        width = len(self.names)
        node = np.repeat(self._roots, n)
        start = np.tile(np.arange(n) * width, len(self._roots))
        for _ in range(self._depth):
            go_left = x[start + self._feature[node]] <= self._threshold[node]
            node = np.where(go_left, self._left[node], self._right[node])
        return [float(v) for v in self._value[node].reshape(len(self._roots), n).mean(axis=0)]

    def score(self, pool: Sequence[Values]) -> list[float]:
        """Every candidate of ``pool`` scored, its features ranked within ``pool``."""
        return self.predict(feature_ranks(pool, self.names))


def feature_names(rows: Sequence[Example], pool: Sequence[Values]) -> list[str]:
    """The fixed feature order: the sorted names known both in some fitting row and in ``pool``."""
    fitted = {n for r in rows for n in r.features}
    present = {n for c in pool for n, v in c.items() if v is not None and not math.isnan(_number(v))}
    return sorted(fitted & present)


def fit_size(prior: int, own: int, min_trials: int = MIN_TRIALS) -> int | None:
    """How many of the study's ``own`` trained rows (in screening order) the model in use is fitted
    on, beside ``prior`` rows: the first fit has ``min_trials`` rows in all, each next one at least
    :data:`REFIT_GROWTH` times the last's. None while there are fewer than ``min_trials``."""
    size = max(0, min_trials - prior)
    if own < size:
        return None
    while True:
        following = max(size + 1, math.ceil(REFIT_GROWTH * (prior + size)) - prior)
        if following > own:
            return size
        size = following


_MODELS: OrderedDict[tuple[Any, ...], LearnedModel] = OrderedDict()
_FITTED = [0]


def _cached_model(key: tuple[Any, ...], names: Sequence[str], rows: Sequence[Example]) -> LearnedModel:
    model = _MODELS.get(key)
    if model is None:
        model = LearnedModel(names, rows)
        _FITTED[0] += 1
        _MODELS[key] = model
        if len(_MODELS) > CACHE_SIZE:
            _MODELS.popitem(last=False)
    else:
        _MODELS.move_to_end(key)
    return model


def fits() -> int:
    """How many models the screening score has fitted in this process (the cache spares the rest)."""
    return _FITTED[0]


def _row_key(values: Values) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, _number(v)) for k, v in values.items()))


@dataclass(frozen=True)
class Learned:
    """The learned scores of a pool (None: too few rows, the combined score is used) and what the
    reason says about them."""

    scores: list[float] | None
    note: str
    own: int = 0
    prior: int = 0

    @property
    def describe(self) -> str:
        """The score as a decision's reason names it."""
        if self.scores is None:
            return "combined score"
        fitted = f"{self.own} trained trial{'s' if self.own != 1 else ''}"
        return f"learned score (fitted on {fitted}{f' and {self.prior} prior' if self.prior else ''})"


def learned_scores(pool: Sequence[Values], outcomes: Sequence[Outcome | None], objectives: Objectives,
                   prior: Prior = NO_PRIOR, min_trials: int = MIN_TRIALS) -> Learned:
    """Every candidate of ``pool`` scored by the model learned from the trained ones and the prior
    rows, lower is better.

    ``outcomes`` is aligned with the start of ``pool`` (the screened candidates, in screening order;
    the candidate being decided comes after them): a trained candidate's training measures, None
    for one not (or not yet) trained. The model is the one of :func:`fit_size`'s rows, its own
    rows featurized within the pool as it was when the last of them was screened.
    """
    trained = [i for i, o in enumerate(outcomes) if o is not None]
    total = len(trained) + len(prior.examples)
    if total < min_trials:
        return Learned(None, f"learned score: {total} trained trial{'s' if total != 1 else ''}, "
                             f"fewer than {min_trials}; combined score used")
    used = fit_size(len(prior.examples), len(trained), min_trials) or 0
    fitted = trained[:used]
    prefix = list(pool[:fitted[-1] + 1]) if fitted else []
    own = pool_examples(prefix, list(outcomes[:len(prefix)]), objectives)  # the prefix's trained are the fitted
    rows = [*prior.examples, *own]
    if len(rows) < min_trials:  # the study's objectives were measured on none of them
        return Learned(None, f"learned score: {len(rows)} trained trials with a measured objective, "
                             f"fewer than {min_trials}; combined score used")
    names = feature_names(rows, pool)
    if not names:
        return Learned(None, "learned score: no predictor known both to the trained rows and to the "
                             "candidates; combined score used")
    key = (prior.key, objectives, tuple(names), tuple(_row_key(c) for c in prefix),
           tuple(tuple(sorted((k, _number(v)) for k, v in (outcomes[i] or {}).items())) for i in fitted))
    model = _cached_model(key, names, rows)
    return Learned(model.score(pool), "", own=len(own), prior=len(prior.examples))


def cross_validated_scores(pool: Sequence[Values], outcomes: Sequence[Outcome | None], objectives: Objectives,
                           folds: int = 5, min_trials: int = MIN_TRIALS,
                           seed: int = 0) -> tuple[list[float | None] | None, str]:
    """The learned score of every trained candidate of ``pool`` out of fold, and a note: the trained
    ones split into ``folds`` folds at random (``seed``), each fold scored by a model fitted on the
    others, so that no candidate is scored by a model that saw it. The scores are aligned with
    ``pool`` (None for the untrained); with too few trained candidates there are none, and the note
    says so."""
    trained = [i for i, o in enumerate(outcomes) if o is not None]
    if len(trained) < min_trials:
        plural = "s" if len(trained) != 1 else ""
        return None, f"learned score: {len(trained)} trained trial{plural}, fewer than {min_trials}"
    order = list(trained)
    np.random.default_rng(seed).shuffle(order)
    k = min(folds, len(order))
    scores: list[float | None] = [None] * len(pool)
    for fold in range(k):
        held = set(order[fold::k])
        rows = pool_examples(pool, [o if i not in held else None for i, o in enumerate(outcomes)], objectives)
        names = feature_names(rows, pool)
        if not names:
            return None, "learned score: no predictor known to the trained trials"
        model = LearnedModel(names, rows)
        ranks = feature_ranks(pool, names)
        held_rows = sorted(held)
        for i, value in zip(held_rows, model.predict(ranks[held_rows])):
            scores[i] = value
    return scores, f"out of fold: {k}-fold cross-validation over {len(trained)} trained trials"
