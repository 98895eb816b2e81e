"""Which way a measure is better: the one vocabulary for predictors, objectives and scores.

A predictor's record says ``"lower"`` or ``"higher"`` (which is better), a study file says
Optuna's ``"minimize"`` or ``"maximize"``; both are spellings of one :class:`Direction`, and every
rule that orders values (screening ranks, the worst model, Pareto fronts, validation verdicts)
asks the direction instead of spelling the comparison again.

Core: no optuna, no plugin knowledge.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

__all__ = ["Direction"]

_WORDS = {"lower": "lower", "minimize": "lower", "higher": "higher", "maximize": "higher"}


class Direction(str, Enum):
    """Which way is better. A ``str`` whose value is what predictor records store."""

    LOWER = "lower"
    HIGHER = "higher"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, word: Any) -> Direction:
        """The direction a word names: ``lower``/``minimize`` or ``higher``/``maximize``."""
        if isinstance(word, Direction):
            return word
        try:
            return cls(_WORDS[str(word).lower()])
        except KeyError:
            raise ValueError(f"a direction is 'lower' or 'higher' ('minimize' or 'maximize'), got {word!r}") from None

    @classmethod
    def parse(cls, word: Any) -> Direction | None:
        """:meth:`of`, or None for a word that names no direction (a record stored by hand)."""
        try:
            return cls.of(word)
        except ValueError:
            return None

    @property
    def optuna(self) -> str:
        """Optuna's word for it: ``"minimize"`` or ``"maximize"``."""
        return "minimize" if self is Direction.LOWER else "maximize"

    @property
    def arrow(self) -> str:
        return "↓" if self is Direction.LOWER else "↑"

    @property
    def opposite(self) -> Direction:
        return Direction.HIGHER if self is Direction.LOWER else Direction.LOWER

    def badness(self, value: float | None) -> float:
        """``value`` as "lower is better"; a missing or NaN value is the worst (+inf)."""
        if value is None or math.isnan(value):
            return math.inf
        return value if self is Direction.LOWER else -value

    def worst_index(self, values: list[float | None]) -> int:
        """The position of the worst of ``values`` (the first of equals; NaN and None are worst)."""
        keys = [self.badness(v) for v in values]
        return max(range(len(keys)), key=keys.__getitem__)

    def best(self, values: list[float]) -> float:
        return min(values) if self is Direction.LOWER else max(values)

    def worst(self, values: list[float]) -> float:
        return max(values) if self is Direction.LOWER else min(values)
