"""The paper's claims as measurements: one function per claim, at paper scale or small scale.

Each function returns a JSON-able dict with ``rows`` (one per measured configuration; what the
figure plots) and ``summary`` (the quantities the claim is about). ``normx reproduce`` writes
them as JSON and CSV; ``tests/test_claims.py`` runs the small scale and checks the claims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch


@dataclass(frozen=True)
class Scale:
    """Sizes of one run: the paper's (Appendix A) or a small CPU-friendly one."""

    resnet: str
    cnn: list[str]
    plaincnn_depth: int
    plaincnn_width: int
    image_size: int
    batch_size: int
    batches: int
    seeds: int
    small_batch: int  # Claim 4's small batch (paper: 16, averaged over 160 batches)
    small_batches: int
    min_width: int  # narrowest layer of the models: the largest GN group size swept
    fig_resnet: str = "resnet56"  # Figure 6b's residual model
    rank_image_size: int = 32  # Claim 3's Gaussian images


PAPER = Scale(resnet="resnet56", cnn=["cnn10", "cnn20"], plaincnn_depth=30, plaincnn_width=64, image_size=32,
              batch_size=256, batches=10, seeds=3, small_batch=16, small_batches=160, min_width=32)
SMALL = Scale(resnet="resnet(blocks=6, width=16)", cnn=["cnn10(width_multiplier=0.25)"], plaincnn_depth=12,
              plaincnn_width=32, image_size=32, batch_size=64, batches=2, seeds=2, small_batch=16, small_batches=4, min_width=8,
              fig_resnet="resnet(blocks=4, width=8)", rank_image_size=8)


def _inputs(data: str, scale: Scale, batch_size: int, batches: int, device: str, seed: int = 0,
            data_dir: str | None = None, download: bool = False) -> list:
    from explorer.data import iter_batches, load_dataset

    ds = load_dataset(data, "train", limit=max(batch_size * batches, batch_size * 2) if data in ("gaussian", "synthetic")
                      else None, seed=seed, device=device, root=data_dir, download=download)
    batches_ = list(iter_batches(ds, batch_size, batches, seed))
    if scale.image_size != ds.x.shape[-1]:
        batches_ = [(torch.nn.functional.interpolate(x, size=scale.image_size, mode="area"), y) for x, y in batches_]
    return batches_, ds.num_classes


def _score(spec: str, model: str, inputs: list, scale: Scale, device: str, num_classes: int) -> dict:
    from explorer.scoring import score

    return score(spec, model=model, inputs=inputs, seeds=scale.seeds, device=device, num_classes=num_classes)


def linear_fit(x: list[float], y: list[float]) -> dict[str, float]:
    """Least-squares line y = a + b·x with its R²."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    b = sum((a - mx) * (c - my) for a, c in zip(x, y)) / sxx
    a = my - b * mx
    ss_res = sum((c - (a + b * v)) ** 2 for v, c in zip(x, y))
    ss_tot = sum((c - my) ** 2 for c in y)
    return {"intercept": a, "slope": b, "r2": 1 - ss_res / ss_tot if ss_tot > 0 else 1.0}


def claim1(scale: Scale = SMALL, data: str = "synthetic", device: str = "cpu", **kw: Any) -> dict:
    """Claim 1: in ResNets, activation-based normalizers keep variance growth linear (BN, GN, LN)."""
    inputs, classes = _inputs(data, scale, scale.batch_size, scale.batches, device, **kw)
    rows, summary = [], {}
    for spec in ("bn", "gn(group_size=4)", "ln"):
        result = _score(spec, scale.resnet, inputs, scale, device, classes)
        summary[spec] = result["variance_growth"]
        rows += [{"spec": spec, "model": result["model"], "layer": i, "activation_variance": v}
                 for i, v in enumerate(result["activation_variance"])]
    return {"claim": "claim1", "rows": rows, "summary": summary}


def claim2(scale: Scale = SMALL, data: str = "synthetic", device: str = "cpu", **kw: Any) -> dict:
    """Claim 2: WN and SWS grow variance exponentially in standard ResNets; resrelu keeps it flat."""
    inputs, classes = _inputs(data, scale, scale.batch_size, scale.batches, device, **kw)
    base = scale.resnet
    rows, summary = [], {}
    for variant in ("standard", "skipinit", "resrelu"):
        model = f"{base[:-1]}, variant={variant})" if base.endswith(")") else f"{base}(variant={variant})"
        for spec in ("wn", "sws"):
            result = _score(spec, model, inputs, scale, device, classes)
            summary[f"{spec}/{variant}"] = result["variance_growth"]
            rows += [{"spec": spec, "variant": variant, "layer": i, "activation_variance": v}
                     for i, v in enumerate(result["activation_variance"])]
    return {"claim": "claim2", "rows": rows, "summary": summary}


def _group_sizes(width: int) -> list[int]:
    return [g for g in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if g <= width and width % g == 0]


def claim3(scale: Scale = SMALL, device: str = "cpu", **kw: Any) -> dict:
    """Claim 3: GN's penultimate stable rank falls with group size, linear in sqrt(width / group size).

    Gaussian inputs, ``plaincnn(depth, width)`` with GN before every ReLU (the paper's Figure 6a).
    """
    from dataclasses import replace

    inputs, classes = _inputs("gaussian", replace(scale, image_size=scale.rank_image_size), scale.batch_size,
                              scale.batches, device)
    width = scale.plaincnn_width
    model = f"plaincnn(depth={scale.plaincnn_depth}, width={width})"
    rows = []
    for g in _group_sizes(width):
        result = _score(f"gn(group_size={g})", model, inputs, scale, device, classes)
        rows.append({"group_size": g, "sqrt_width_over_group_size": math.sqrt(width / g),
                     "stable_rank": result["stable_rank"], "stable_rank_spread": result["spread"]["stable_rank"],
                     "cosine_similarity": result["cosine_similarity"]})
    fit = linear_fit([r["sqrt_width_over_group_size"] for r in rows], [r["stable_rank"] for r in rows])
    return {"claim": "claim3", "model": model, "rows": rows, "summary": {"fit": fit}}


def claim4(scale: Scale = SMALL, data: str = "synthetic", device: str = "cpu", **kw: Any) -> dict:
    """Claim 4: gradient explosion IN ≥ BN ≥ GN ≥ LN, on inputs with natural statistics, two batch sizes."""
    rows, summary = [], {}
    for batch_size, batches in ((scale.batch_size, scale.batches), (scale.small_batch, scale.small_batches)):
        inputs, classes = _inputs(data, scale, batch_size, batches, device, **kw)
        for model in scale.cnn:
            for spec in ("in", "bn", "gn(group_size=4)", "ln"):
                result = _score(spec, model, inputs, scale, device, classes)
                key = f"{model}/batch={batch_size}/{spec}"
                summary[key] = result["grad_explosion_exponent"]
                rows += [{"model": model, "batch_size": batch_size, "spec": spec, "layer": i, "grad_norm": g,
                          "grad_explosion_exponent": result["grad_explosion_exponent"]}
                         for i, g in enumerate(result["grad_norm"])]
    return {"claim": "claim4", "rows": rows, "summary": summary}


def fig6b(scale: Scale = SMALL, device: str = "cpu", **kw: Any) -> dict:
    """Figure 6b: penultimate cosine similarity rises with GN's group size; LN (group = layer) highest."""
    inputs, classes = _inputs("gaussian", scale, scale.batch_size, scale.batches, device)
    rows, summary = [], {}
    for model in [scale.cnn[-1], scale.fig_resnet]:
        for g in _group_sizes(scale.min_width):
            result = _score(f"gn(group_size={g})", model, inputs, scale, device, classes)
            rows.append({"model": model, "spec": f"gn(group_size={g})", "group_size": g,
                         "cosine_similarity": result["cosine_similarity"]})
        result = _score("ln", model, inputs, scale, device, classes)
        rows.append({"model": model, "spec": "ln", "group_size": "layer", "cosine_similarity": result["cosine_similarity"]})
        summary[model] = {r["spec"]: r["cosine_similarity"] for r in rows if r["model"] == model}
    return {"claim": "fig6b", "rows": rows, "summary": summary}


def fig9(scale: Scale = SMALL, data: str = "synthetic", device: str = "cpu", **kw: Any) -> dict:
    """Figure 9: GN's group size trades cosine similarity (speed) against gradient explosion (stability)."""
    inputs, classes = _inputs(data, scale, scale.small_batch, scale.small_batches, device, **kw)
    rows = []
    for model in scale.cnn:
        for g in _group_sizes(scale.min_width):
            result = _score(f"gn(group_size={g})", model, inputs, scale, device, classes)
            rows.append({"model": model, "group_size": g, "cosine_similarity": result["cosine_similarity"],
                         "grad_explosion_exponent": result["grad_explosion_exponent"]})
    return {"claim": "fig9", "rows": rows, "summary": {}}


#: The normalization-free question's specs: BN and GN as the references, the 2025 layers, no normalization.
NORMFREE_SPECS = ("bn", "gn(group_size=4)", "dyt", "derf", "seednorm", "none")


def normfree(scale: Scale = SMALL, data: str = "synthetic", device: str = "cpu", **kw: Any) -> dict:
    """Do DyT, Derf and SeeDNorm replace BN/GN in CNNs and ResNets? Their predictors at init.

    Per model and spec: variance growth over the residual stream (Claims 1-2's measure), cosine
    similarity, gradient-explosion exponent and stable rank. (Trained accuracy: the
    ``normalizer_free`` study.)
    """
    inputs, classes = _inputs(data, scale, scale.batch_size, scale.batches, device, **kw)
    rows, summary = [], {}
    for model in (scale.cnn[0], scale.resnet):
        for spec in NORMFREE_SPECS:
            result = _score(spec, model, inputs, scale, device, classes)
            summary[f"{model}/{spec}"] = {
                "variance_growth": result["variance_growth"], "cosine_similarity": result["cosine_similarity"],
                "grad_explosion_exponent": result["grad_explosion_exponent"], "stable_rank": result["stable_rank"],
                "overflow": result["overflow"],
            }
            rows += [{"model": model, "spec": spec, "layer": i, "activation_variance": v, "grad_norm": g,
                      "cosine_similarity": result["cosine_similarity"],
                      "grad_explosion_exponent": result["grad_explosion_exponent"]}
                     for i, (v, g) in enumerate(zip(result["activation_variance"], result["grad_norm"]))]
    return {"claim": "normfree", "rows": rows, "summary": summary}


CLAIMS: dict[str, Callable[..., dict]] = {
    "claim1": claim1, "claim2": claim2, "claim3": claim3, "claim4": claim4, "fig6b": fig6b, "fig9": fig9,
    "normfree": normfree,
}
