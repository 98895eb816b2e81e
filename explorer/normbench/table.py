"""A NormBench table: one file of JSON lines, a header with the metadata, then one line per composition.

Plain Python (no optuna, no torch): ``load("digits")`` is what a replay, a notebook or a test
reads. Numbers that JSON cannot hold are stored as ``"nan"``/``"inf"`` strings, as in a trial.

Lookups go by canonical spec or by equivalence key (two texts that compute the same thing on the
table's models share a key), never by a text as a user happened to write it.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from explorer.errors import NormxError, suggestion
from explorer.records import json_safe, to_float

__all__ = ["BAND_SIGMAS", "FORMAT", "FLAT_FRACTION", "Row", "TABLES_DIR", "Table", "TableError", "list_tables",
           "load", "parse_checkpoint"]

#: The version of the file layout; a reader refuses a newer one.
FORMAT = 1
#: Where the committed tables live (shipped with the package).
TABLES_DIR = Path(__file__).parent / "tables"
#: A composition is inside the noise band of the best when its final test accuracy is at most this
#: many seed standard deviations below the best's.
BAND_SIGMAS = 2.0
#: A table whose band holds more than this fraction of its trained compositions is flat: any pick
#: is nearly as good, and it is no search task.
FLAT_FRACTION = 0.10


class TableError(NormxError):
    """A table that cannot be found or read."""


@dataclass
class Row:
    """One distinct composition of a table: what screening measured and what one training run did."""

    #: the canonical spec
    spec: str
    #: the equivalence key: the spec resolved at the table's model widths
    key: str
    #: the study trial it comes from
    trial: int
    #: why it could not be built on the table's models (then nothing was measured)
    invalid: str | None = None
    #: every scalar predictor at initialization (mean over the screening seeds); NaN when missing
    predictors: dict[str, float] = field(default_factory=dict)
    #: predictor name -> "lower" or "higher" (which is better)
    directions: dict[str, str] = field(default_factory=dict)
    #: predictor name -> why it could not be computed
    missing: dict[str, str] = field(default_factory=dict)
    #: the kind of activation-variance growth ("flat", "linear", "exponential"); its rate is the
    #: predictor ``variance_growth_rate``
    growth_kind: str = "flat"
    #: inf or NaN at initialization
    overflow: bool = False
    #: seconds screening took (every predictor, every screening seed)
    screening_s: float = 0.0
    #: the run at each checkpoint: step, train_loss, mean_train_accuracy, test_accuracy, train_s
    checkpoints: list[dict[str, float]] = field(default_factory=list)
    #: final test accuracy of the run (seed 0)
    test_accuracy: float = math.nan
    #: the paper's speed: training accuracy averaged over the whole run
    mean_train_accuracy: float = math.nan
    #: seconds of training (evaluations not counted)
    train_s: float = 0.0
    steps: int = 0
    diverged: bool = False
    #: training seed -> final test accuracy, for the compositions retrained to measure the noise
    #: (seed 0 is the main run)
    seeds: dict[int, float] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return self.invalid is None and self.steps > 0

    def record(self) -> dict[str, Any]:
        """The predictors as a trial stores them (docs/trial-schema.md): what the study worker's
        screening functions read, so that a replay decides with the same functions on the same input."""
        out: dict[str, Any] = {k: v for k, v in self.predictors.items() if k != "variance_growth_rate"}
        out["variance_growth"] = {"kind": self.growth_kind, "rate": self.predictors.get("variance_growth_rate", 0.0)}
        out["overflow"] = self.overflow
        out["missing"] = dict(self.missing)
        out["directions"] = {("variance_growth" if k == "variance_growth_rate" else k): v
                             for k, v in self.directions.items()}
        return out

    def outcomes(self) -> dict[str, float]:
        """The training measures a study's objectives name, as a trial's ``train`` record gives them
        (the learned screening score's targets): a diverged run's final loss is +inf."""
        last = self.checkpoints[-1].get("train_loss", math.nan) if self.checkpoints else math.nan
        return {"test_accuracy": self.test_accuracy, "mean_train_accuracy": self.mean_train_accuracy,
                "final_loss": math.inf if self.diverged else last, "wall_time_s": self.train_s}

    def at(self, step: int) -> dict[str, float]:
        """The checkpoint at ``step`` (KeyError when the table did not measure there)."""
        for c in self.checkpoints:
            if int(c["step"]) == step:
                return c
        raise KeyError(step)

    def to_json(self) -> dict[str, Any]:
        out = json_safe(asdict(self))
        out["seeds"] = {str(k): v for k, v in out["seeds"].items()}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        def number(v: Any) -> float:
            return to_float(v, math.nan)

        return cls(
            spec=str(data["spec"]), key=str(data["key"]), trial=int(data["trial"]), invalid=data.get("invalid"),
            predictors={str(k): number(v) for k, v in (data.get("predictors") or {}).items()},
            directions={str(k): str(v) for k, v in (data.get("directions") or {}).items()},
            missing={str(k): str(v) for k, v in (data.get("missing") or {}).items()},
            growth_kind=str(data.get("growth_kind", "flat")), overflow=bool(data.get("overflow", False)),
            screening_s=number(data.get("screening_s", 0.0)),
            checkpoints=[parse_checkpoint(c) for c in data.get("checkpoints") or []],
            test_accuracy=number(data.get("test_accuracy")), mean_train_accuracy=number(data.get("mean_train_accuracy")),
            train_s=number(data.get("train_s", 0.0)), steps=int(data.get("steps") or 0),
            diverged=bool(data.get("diverged", False)),
            seeds={int(k): number(v) for k, v in (data.get("seeds") or {}).items()},
        )


@dataclass
class Table:
    """Every distinct composition of one space on one task, with the build's metadata."""

    name: str
    metadata: dict[str, Any]
    rows: list[Row]

    def __post_init__(self) -> None:
        self._by_key = {r.key: r for r in self.rows}
        self._by_spec = {r.spec: r for r in self.rows}

    def row(self, spec_or_key: str) -> Row | None:
        """The row of a canonical spec or an equivalence key; None when the table has none."""
        return self._by_spec.get(spec_or_key) or self._by_key.get(spec_or_key)

    @property
    def trained(self) -> list[Row]:
        return [r for r in self.rows if r.trained]

    @property
    def checkpoint_steps(self) -> list[int]:
        """The steps every trained row was measured at, in order."""
        return [int(s) for s in self.metadata.get("checkpoints", [])]

    @cached_property
    def top(self) -> list[Row]:
        """The best ``noise.fraction`` of the trained compositions by final test accuracy: the
        top sample of the noise runs, and what the noise band is about."""
        fraction = float((self.metadata.get("noise") or {}).get("fraction", 0.1))
        ranked = sorted(self.trained, key=lambda r: (-r.test_accuracy, r.trial))
        return ranked[:max(1, math.ceil(fraction * len(ranked)))] if ranked else []

    @staticmethod
    def _pooled(rows: list[Row]) -> float:
        variances = [statistics.variance(list(r.seeds.values())) for r in rows if len(r.seeds) >= 2]
        return math.sqrt(sum(variances) / len(variances)) if variances else math.nan

    @cached_property
    def noise_sigma(self) -> float:
        """The seed noise of the best compositions' final test accuracy: the pooled standard
        deviation over the top sample retrained with several seeds (NaN when none were)."""
        return self._pooled(self.top)

    @cached_property
    def noise_sigma_random(self) -> float:
        """The same over the random sample: larger where unstable compositions (no normalizer,
        some gates) train well with one seed and diverge with another."""
        top = {r.key for r in self.top}
        return self._pooled([r for r in self.rows if r.key not in top])

    @cached_property
    def best(self) -> Row:
        """The trained composition with the highest final test accuracy (the first of equals)."""
        return max(self.trained, key=lambda r: (r.test_accuracy, -r.trial))

    @cached_property
    def band(self) -> float:
        """How far below the best a composition may be and count as found (BAND_SIGMAS · σ)."""
        return BAND_SIGMAS * self.noise_sigma if math.isfinite(self.noise_sigma) else 0.0

    def in_band(self, row: Row) -> bool:
        return row.trained and row.test_accuracy >= self.best.test_accuracy - self.band

    @property
    def band_fraction(self) -> float:
        """The fraction of trained compositions inside the noise band of the best."""
        trained = self.trained
        return sum(self.in_band(r) for r in trained) / len(trained) if trained else math.nan

    @property
    def flat(self) -> bool:
        return self.band_fraction > FLAT_FRACTION

    def predictor_names(self) -> list[str]:
        """Every scalar predictor the table holds, in the order the rows store them."""
        names: dict[str, None] = {}
        for r in self.rows:
            names.update(dict.fromkeys(r.predictors))
        return list(names)

    def save(self, path: str | Path) -> Path:
        """Write the table (header, then one row per line), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            header = {"normbench": FORMAT, "name": self.name, "metadata": json_safe(self.metadata)}
            handle.write(json.dumps(header, sort_keys=True) + "\n")
            for row in sorted(self.rows, key=lambda r: r.trial):
                handle.write(json.dumps(row.to_json(), sort_keys=True) + "\n")
        tmp.replace(path)
        return path


def parse_checkpoint(data: dict[str, Any]) -> dict[str, float]:
    """A stored checkpoint: its step an int, every measure a float (NaN for "nan")."""
    return {str(k): (int(v) if k == "step" else to_float(v, math.nan)) for k, v in data.items()}


def _path_of(name: str | Path) -> Path:
    path = Path(name)
    if path.suffix == ".jsonl" or path.exists():
        return path
    candidate = TABLES_DIR / f"{name}.jsonl"
    if candidate.exists():
        return candidate
    known = list_tables()
    hint = suggestion(str(name), known) if known else "no table is installed (normx table build makes one)"
    raise TableError(f"unknown table {str(name)!r}; {hint}")


def load(name: str | Path) -> Table:
    """A committed table by name (``"digits"``) or any table file by path."""
    path = _path_of(name)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise TableError(f"cannot read table {path}: {err.strerror or err}") from None
    try:
        header = json.loads(lines[0]) if lines else {}
        if not isinstance(header, dict) or "normbench" not in header:
            raise TableError(f"{path}: not a NormBench table (no header line)")
        if int(header["normbench"]) > FORMAT:
            raise TableError(f"{path}: table format {header['normbench']} is newer than this normx reads ({FORMAT})")
        rows = [Row.from_json(json.loads(line)) for line in lines[1:] if line.strip()]
    except (ValueError, KeyError, TypeError) as err:
        raise TableError(f"{path}: not a readable NormBench table ({type(err).__name__}: {err})") from None
    return Table(str(header.get("name") or path.stem), dict(header.get("metadata") or {}), rows)


def list_tables() -> list[str]:
    """The names of the committed tables."""
    return sorted(p.stem for p in TABLES_DIR.glob("*.jsonl")) if TABLES_DIR.is_dir() else []
