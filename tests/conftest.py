"""Shared test settings: deterministic hypothesis runs, float64 references, the plugin registry."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
import torch
from hypothesis import HealthCheck, settings

# Deterministic property tests (CI and local runs draw the same examples) with no per-example
# deadline: the first example of a test pays for torch's lazy initialisation.
settings.register_profile(
    "normx", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("NORMX_HYPOTHESIS_PROFILE", "normx"))

#: Tolerance of every comparison against an independent reference (float64).
TOL = 1e-5


@pytest.fixture
def registry():
    from explorer.plugins import get_registry

    return get_registry()


@pytest.fixture
def normx_exe() -> list[str]:
    """The installed console script, or ``python -m explorer`` when it is not on PATH."""
    exe = shutil.which("normx")
    return [exe] if exe else [sys.executable, "-m", "explorer"]


@pytest.fixture(autouse=False)
def float64():
    """Run a test with float64 as the default dtype."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
