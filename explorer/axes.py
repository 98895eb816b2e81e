"""Statistic axes: which dimensions a mean or a deviation is taken over.

Letters: ``b`` batch, ``c`` all channels (the layer), ``g`` a group of channels (needs
``groups=`` or ``group_size=``), ``x`` spatial positions. BatchNorm is ``bx``, LayerNorm ``cx``,
InstanceNorm ``x``, GroupNorm ``gx``. A sequence (N, L, C) is normalized as N·L tokens of C
features, so ``b`` covers batch and positions and ``x`` is empty (transformer convention).
"""

from __future__ import annotations

from explorer.errors import SpecError

AXIS_LETTERS = "bcgx"
AXIS_NAMES = {"b": "batch", "c": "channels", "g": "channel groups", "x": "spatial"}


def parse_axes(value: object) -> str:
    """Validate and order an axes string: ``'xb'`` -> ``'bx'``."""
    text = str(value).strip().lower().replace("+", "").replace(",", "")
    if not text:
        raise SpecError("axes must name at least one of b, c, g, x")
    bad = sorted(set(text) - set(AXIS_LETTERS))
    if bad:
        raise SpecError(f"unknown axis letter(s) {''.join(bad)!r} in {value!r}; use b (batch), c (channels), g (groups), x (spatial)")
    if "c" in text and "g" in text:
        raise SpecError(f"axes {value!r}: 'c' (all channels) already contains 'g' (a group)")
    if len(set(text)) != len(text):
        raise SpecError(f"axes {value!r} repeat a letter")
    return "".join(letter for letter in AXIS_LETTERS if letter in text)


def describe_axes(axes: str) -> str:
    return "{" + ",".join(AXIS_NAMES[a] for a in axes) + "}"
