"""The small study file the end-to-end tests run: a 2-layer MLP on Gaussian data, one screening
batch, a few presets; each test states only what it changes."""

from __future__ import annotations


def tiny_study(name: str, n: int = 1, objectives: str = 'cosine_similarity = "minimize"',
               space: str = 'presets = ["bn"]', screening: str = "", training: str = "steps = 0",
               extra: str = "") -> str:
    """A study file's text; ``objectives``, ``space``, ``screening`` and ``training`` are the lines
    of those sections, ``extra`` more sections."""
    return f"""\
name = "{name}"
models = ["mlp(depth=2, width=16)"]
n_trials = {n}
[objectives]
{objectives}
[data]
name = "gaussian"
train_limit = 64
test_limit = 32
[space]
{space}
[screening]
batch_size = 32
batches = 1
reject_variance_growth = []
{screening}
[training]
{training}
{extra}"""
