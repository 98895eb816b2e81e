"""The study context: every name of a study file checked once, the data loaded, the widths known.

:func:`prepare` runs before anything is created in storage, so a bad name in the study is one
:class:`StudyFileError` line with the file's line, never a failed trial. Each worker process
prepares its own context.
"""

from __future__ import annotations

from typing import Any
from dataclasses import dataclass, field

import torch

from explorer.data import Dataset, load_dataset
from explorer.errors import NormxError
from explorer.models import create_model, normalization_widths
from explorer.plugins import get_registry
from explorer.registry import Registry
from explorer.search.space import SearchSpace
from explorer.search.study_file import StudyConfig, StudyFileError, locate
from explorer.spec import Spec, parse_spec
from explorer.training import get_device


@dataclass
class StudyContext:
    """Everything a worker needs, checked once: config, space, data, models."""

    config: StudyConfig
    registry: Registry
    space: SearchSpace
    train_data: Dataset | None = None
    test_data: Dataset | None = None
    device: str = "cpu"
    #: widths of every model's normalization sites, and of its normalized ops' inputs
    site_widths: set[int] = field(default_factory=set)
    input_widths: set[int] = field(default_factory=set)
    #: policy "halving": the study's artifact store for training checkpoints (an Optuna
    #: ``ArtifactStore``), set by the worker once it knows the storage
    artifacts: Any = None

    def equivalence_key(self, spec: str | Spec) -> str:
        """The spec resolved at every width the study's models normalize: two compositions with the
        same key compute the same thing on these models (``gn(group_size=16)`` on 16-wide layers is
        LN), so the later one reuses the earlier one's results. The spec as given (its canonical
        text, for a parsed one) when it cannot be resolved."""
        spec_text = spec if isinstance(spec, str) else str(spec)
        parsed = parse_spec(spec, self.registry)
        pre = any(step.get("at") == "pre" for step in parsed.steps)
        widths = sorted(self.site_widths | (self.input_widths if pre else set()))
        try:
            resolved = [str(parsed.resolved(w)) for w in widths]  # in width order: equal keys, equal at each width
        except NormxError:
            return spec_text
        if not resolved:
            return spec_text
        return resolved[0] if len(set(resolved)) == 1 else " || ".join(f"{w}: {r}" for w, r in zip(widths, resolved))


def prepare(config: StudyConfig, download: bool = False) -> StudyContext:
    """Check every name of the study against the registry, the models and the data; load the data
    (``download``: fetch CIFAR into the data directory when it is not there, ``normx study run --download``)."""
    registry = get_registry()
    space = SearchSpace(config, registry)
    space.check()
    ctx = StudyContext(config, registry, space)
    device = config.training.device
    try:
        ctx.device = str(get_device(device))
    except RuntimeError as err:
        raise file_error(config, ("training", "device"), str(err)) from None
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise file_error(config, ("training", "device"), "must be auto, cpu or cuda[:N]")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise file_error(config, ("training", "device"), "CUDA is not available on this machine; use auto or cpu")
    try:
        ctx.train_data = load_dataset(config.data.name, "train", limit=config.data.train_limit,
                                      seed=config.data.seed, device="cpu", download=download)
        if config.needs_training():
            ctx.test_data = load_dataset(config.data.name, "test", limit=config.data.test_limit,
                                         seed=config.data.seed, device="cpu", download=download)
    except NormxError as err:
        raise file_error(config, ("data", "name"), str(err)) from None
    if config.screening.batch_size > len(ctx.train_data):
        raise file_error(config, ("screening", "batch_size"),
                         f"larger than the {len(ctx.train_data)} training samples (data.train_limit)")
    in_channels = int(ctx.train_data.x.shape[1])
    for model in config.models:
        try:
            built = create_model(model, "relu", num_classes=ctx.train_data.num_classes, in_channels=in_channels,
                                 registry=registry)
        except NormxError as err:
            raise file_error(config, ("models",), str(err)) from None
        sites, inputs = normalization_widths(built)
        ctx.site_widths |= sites
        ctx.input_widths |= inputs
    return ctx


def file_error(config: StudyConfig, key: tuple[str, ...], message: str) -> StudyFileError:
    """A problem with a key of the study file, found past parsing: ``file:line: key: message``."""
    return StudyFileError(f"{config.path}:{locate(config.text, key)}: {'.'.join(key)}: {message}")
