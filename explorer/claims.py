"""The paper's claims as measurements: one function per claim, at paper scale or small scale.

Each function returns a JSON-able dict with ``rows`` (one per measured configuration or layer;
what the figure plots) and ``summary`` (the quantities the claim is about), and reports each
measurement before it runs to an optional ``progress`` callback (a :class:`Step`). :func:`verdict`
judges a result against the claim with the criteria of ``tests/test_claims.py``; ``normx
reproduce`` writes the result as JSON, CSV and a figure (:mod:`explorer.plots.claim_figures`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from explorer.data import iter_batches, load_dataset
from explorer.models import canonical_model_name, create_model
from explorer.scoring import aggregate, check_batch_size, measure
from explorer.spec import parse_spec
from explorer.training import TrainConfig, train


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
    train_epochs: float = 0.0  # Figure 9's training per group size (test accuracy); 0: none
    train_batch_size: int = 256
    train_limit: int | None = None  # training samples (None: the whole training set)
    test_limit: int | None = None  # test samples (None: the whole test set)


PAPER = Scale(resnet="resnet56", cnn=["cnn10", "cnn20"], plaincnn_depth=30, plaincnn_width=64, image_size=32,
              batch_size=256, batches=10, seeds=3, small_batch=16, small_batches=160, min_width=32,
              train_epochs=60, train_batch_size=256)
SMALL = Scale(resnet="resnet(blocks=6, width=16)", cnn=["cnn10(width_multiplier=0.25)"], plaincnn_depth=12,
              plaincnn_width=32, image_size=32, batch_size=64, batches=2, seeds=2, small_batch=16, small_batches=4, min_width=8,
              fig_resnet="resnet(blocks=4, width=8)", rank_image_size=8, train_batch_size=64, train_limit=1024,
              test_limit=512)  # no training unless asked (normx reproduce fig9 --small --train-epochs 4)


@dataclass(frozen=True)
class Step:
    """One measurement about to run, for a progress display: number ``index`` of ``total`` (1-based).

    ``task`` is ``score`` (predictors at initialization of one seed) or ``train`` (a training run).
    """

    claim: str
    index: int
    total: int
    task: str
    spec: str
    model: str
    seed: int
    seeds: int


ProgressCallback = Callable[[Step], None]


class _Run:
    """One claim's measurements: counts them and reports each to ``progress`` before it runs."""

    def __init__(self, claim: str, scale: Scale, device: str, scores: int, progress: ProgressCallback | None,
                 trainings: int = 0):
        self.claim, self.scale, self.device, self.progress = claim, scale, device, progress
        self.total = scores * scale.seeds + trainings
        self.done = 0

    def _report(self, task: str, spec: str, model: str, seed: int, seeds: int) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(Step(self.claim, self.done, self.total, task, spec, model, seed, seeds))

    def score(self, spec: str, model: str, inputs: list, num_classes: int) -> dict:
        """Every predictor of ``spec`` on ``model``, averaged over the batches, then over seeds 0..seeds-1."""

        parsed = parse_spec(spec)
        for x, _ in inputs:
            check_batch_size(parsed, x.shape[0])
        runs = []
        for seed in range(self.scale.seeds):
            self._report("score", spec, model, seed, self.scale.seeds)
            torch.manual_seed(seed)
            built = create_model(model, parsed, num_classes=num_classes, in_channels=inputs[0][0].shape[1])
            runs.append(measure(built.to(self.device), inputs))
        return aggregate(runs, spec=str(parsed), model=canonical_model_name(model), batches=len(inputs),
                         device=str(torch.device(self.device)))

    def train(self, spec: str, model: str, data: str, data_dir: str | None = None, download: bool = False) -> dict:
        """Train ``spec`` on ``model`` (seed 0, the paper's recipe) and return its accuracies."""

        scale = self.scale
        self._report("train", spec, model, 0, 1)
        train_data = load_dataset(data, "train", limit=scale.train_limit, seed=0, device=self.device, root=data_dir,
                                  download=download)
        test_data = load_dataset(data, "test", limit=scale.test_limit, seed=0, device=self.device, root=data_dir,
                                 download=download)
        torch.manual_seed(0)
        built = create_model(model, spec, num_classes=train_data.num_classes, in_channels=train_data.x.shape[1])
        config = TrainConfig(epochs=scale.train_epochs, batch_size=scale.train_batch_size,
                             base_lr=0.01 if model.startswith("cnn20") else 0.1, device=self.device, seed=0)
        result = train(built, train_data, test_data, config)
        return {"test_accuracy": result.test_accuracy, "mean_train_accuracy": result.mean_train_accuracy,
                "diverged": result.diverged}


def _inputs(data: str, scale: Scale, batch_size: int, batches: int, device: str, seed: int = 0,
            data_dir: str | None = None, download: bool = False) -> list:
    ds = load_dataset(data, "train", limit=max(batch_size * batches, batch_size * 2) if data in ("gaussian", "synthetic")
                      else None, seed=seed, device=device, root=data_dir, download=download)
    batches_ = list(iter_batches(ds, batch_size, batches, seed))
    if scale.image_size != ds.x.shape[-1]:
        batches_ = [(torch.nn.functional.interpolate(x, size=scale.image_size, mode="area"), y) for x, y in batches_]
    return batches_, ds.num_classes


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


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's τ-a: (concordant − discordant pairs) / all pairs; tied pairs count as neither."""
    pairs = [(i, j) for i in range(len(x)) for j in range(i + 1, len(x))]
    if not pairs:
        return float("nan")
    signs = [(x[i] - x[j]) * (y[i] - y[j]) for i, j in pairs]
    return sum((s > 0) - (s < 0) for s in signs) / len(pairs)


ACTIVATION_NORMALIZERS = ("bn", "gn(group_size=4)", "ln")  # Claim 1, Figure 2
RESNET_VARIANTS = ("standard", "skipinit", "resrelu")  # Claim 2, Figure 3 (a), (b), (c)
GRADIENT_ORDER = ("in", "bn", "gn(group_size=4)", "ln")  # Claim 4, Figure 8: most to least explosion


def claim1(scale: Scale = SMALL, data: str = "synthetic", device: str = "cpu",
           progress: ProgressCallback | None = None, **kw: Any) -> dict:
    """Claim 1: in ResNets, activation-based normalizers keep variance growth linear (BN, GN, LN)."""
    inputs, classes = _inputs(data, scale, scale.batch_size, scale.batches, device, **kw)
    run = _Run("claim1", scale, device, len(ACTIVATION_NORMALIZERS), progress)
    rows, summary = [], {}
    for spec in ACTIVATION_NORMALIZERS:
        result = run.score(spec, scale.resnet, inputs, classes)
        summary[spec] = result["variance_growth"]
        rows += [{"spec": spec, "model": result["model"], "layer": i, "activation_variance": v}
                 for i, v in enumerate(result["activation_variance"])]
    return {"claim": "claim1", "rows": rows, "summary": summary}


def claim2(scale: Scale = SMALL, data: str = "synthetic", device: str = "cpu",
           progress: ProgressCallback | None = None, **kw: Any) -> dict:
    """Claim 2: WN and SWS grow variance exponentially in standard ResNets; resrelu keeps it flat."""
    inputs, classes = _inputs(data, scale, scale.batch_size, scale.batches, device, **kw)
    base = scale.resnet
    run = _Run("claim2", scale, device, 2 * len(RESNET_VARIANTS), progress)
    rows, summary = [], {}
    for variant in RESNET_VARIANTS:
        model = f"{base[:-1]}, variant={variant})" if base.endswith(")") else f"{base}(variant={variant})"
        for spec in ("wn", "sws"):
            result = run.score(spec, model, inputs, classes)
            summary[f"{spec}/{variant}"] = result["variance_growth"]
            rows += [{"spec": spec, "variant": variant, "layer": i, "activation_variance": v}
                     for i, v in enumerate(result["activation_variance"])]
    return {"claim": "claim2", "rows": rows, "summary": summary}


def _group_sizes(width: int) -> list[int]:
    return [g for g in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if g <= width and width % g == 0]


def claim3(scale: Scale = SMALL, device: str = "cpu", progress: ProgressCallback | None = None, **kw: Any) -> dict:
    """Claim 3: GN's penultimate stable rank falls with group size, linear in sqrt(width / group size).

    Gaussian inputs, ``plaincnn(depth, width)`` with GN before every ReLU (the paper's Figure 6a).
    The fit is None with fewer than two group sizes.
    """
    inputs, classes = _inputs("gaussian", replace(scale, image_size=scale.rank_image_size), scale.batch_size,
                              scale.batches, device)
    width = scale.plaincnn_width
    model = f"plaincnn(depth={scale.plaincnn_depth}, width={width})"
    sizes = _group_sizes(width)
    run = _Run("claim3", scale, device, len(sizes), progress)
    rows = []
    for g in sizes:
        result = run.score(f"gn(group_size={g})", model, inputs, classes)
        rows.append({"group_size": g, "sqrt_width_over_group_size": math.sqrt(width / g),
                     "stable_rank": result["stable_rank"], "stable_rank_spread": result["spread"]["stable_rank"],
                     "cosine_similarity": result["cosine_similarity"]})
    fit = (linear_fit([r["sqrt_width_over_group_size"] for r in rows], [r["stable_rank"] for r in rows])
           if len(rows) >= 2 else None)
    return {"claim": "claim3", "model": model, "width": width, "rows": rows, "summary": {"fit": fit}}


def claim4(scale: Scale = SMALL, data: str = "synthetic", device: str = "cpu",
           progress: ProgressCallback | None = None, **kw: Any) -> dict:
    """Claim 4: gradient explosion IN ≥ BN ≥ GN ≥ LN, on inputs with natural statistics, two batch sizes."""
    settings = ((scale.batch_size, scale.batches), (scale.small_batch, scale.small_batches))
    run = _Run("claim4", scale, device, len(settings) * len(scale.cnn) * len(GRADIENT_ORDER), progress)
    rows, summary = [], {}
    for batch_size, batches in settings:
        inputs, classes = _inputs(data, scale, batch_size, batches, device, **kw)
        for model in scale.cnn:
            for spec in GRADIENT_ORDER:
                result = run.score(spec, model, inputs, classes)
                key = f"{model}/batch={batch_size}/{spec}"
                summary[key] = result["grad_explosion_exponent"]
                rows += [{"model": model, "batch_size": batch_size, "spec": spec, "layer": i, "grad_norm": g,
                          "grad_explosion_exponent": result["grad_explosion_exponent"]}
                         for i, g in enumerate(result["grad_norm"])]
    return {"claim": "claim4", "rows": rows, "summary": summary}


def fig6b(scale: Scale = SMALL, device: str = "cpu", progress: ProgressCallback | None = None, **kw: Any) -> dict:
    """Figure 6b: penultimate cosine similarity rises with GN's group size; LN (group = layer) highest."""
    inputs, classes = _inputs("gaussian", scale, scale.batch_size, scale.batches, device)
    models, sizes = [scale.cnn[-1], scale.fig_resnet], _group_sizes(scale.min_width)
    run = _Run("fig6b", scale, device, len(models) * (len(sizes) + 1), progress)
    rows, summary = [], {}
    for model in models:
        for g in sizes:
            result = run.score(f"gn(group_size={g})", model, inputs, classes)
            rows.append({"model": model, "spec": f"gn(group_size={g})", "group_size": g,
                         "cosine_similarity": result["cosine_similarity"]})
        result = run.score("ln", model, inputs, classes)
        rows.append({"model": model, "spec": "ln", "group_size": "layer", "cosine_similarity": result["cosine_similarity"]})
        summary[model] = {r["spec"]: r["cosine_similarity"] for r in rows if r["model"] == model}
    return {"claim": "fig6b", "rows": rows, "summary": summary}


def fig9(scale: Scale = SMALL, data: str = "synthetic", device: str = "cpu",
         progress: ProgressCallback | None = None, **kw: Any) -> dict:
    """Figure 9: GN's group size trades cosine similarity (speed) against gradient explosion (stability).

    With ``scale.train_epochs`` > 0 each group size is also trained (seed 0) for its test accuracy:
    the paper finds it highest where the two curves cross.
    """
    inputs, classes = _inputs(data, scale, scale.small_batch, scale.small_batches, device, **kw)
    sizes = _group_sizes(scale.min_width)
    configs = len(scale.cnn) * len(sizes)
    run = _Run("fig9", scale, device, configs, progress, trainings=configs if scale.train_epochs > 0 else 0)
    rows = []
    for model in scale.cnn:
        for g in sizes:
            spec = f"gn(group_size={g})"
            result = run.score(spec, model, inputs, classes)
            row = {"model": model, "group_size": g, "cosine_similarity": result["cosine_similarity"],
                   "grad_explosion_exponent": result["grad_explosion_exponent"]}
            if scale.train_epochs > 0:
                row.update(run.train(spec, model, data, kw.get("data_dir"), kw.get("download", False)))
            rows.append(row)
    summary = {}
    for model in scale.cnn:
        mine = [r for r in rows if r["model"] == model]
        summary[model] = {
            "similarity_tau": kendall_tau([r["group_size"] for r in mine], [r["cosine_similarity"] for r in mine]),
            "explosion_tau": kendall_tau([r["group_size"] for r in mine], [r["grad_explosion_exponent"] for r in mine])}
        summary[model]["crossing_group_size"] = crossing(mine)
        if scale.train_epochs > 0:
            summary[model]["best_group_size"] = max(mine, key=lambda r: r["test_accuracy"])["group_size"]
    return {"claim": "fig9", "rows": rows, "summary": summary}


def crossing(rows: list[dict]) -> int | None:
    """The group size where Figure 9's two curves cross: min-max scaled cosine similarity and gradient
    explosion exponent closest to each other (None when a value is not finite or nothing varies)."""
    def scaled(key: str) -> list[float] | None:
        values = [float(r[key]) for r in rows]
        low, high = min(values), max(values)
        if not all(math.isfinite(v) for v in values) or high == low:
            return None
        return [(v - low) / (high - low) for v in values]

    similarity, explosion = scaled("cosine_similarity"), scaled("grad_explosion_exponent")
    if similarity is None or explosion is None:
        return None
    gaps = [abs(a - b) for a, b in zip(similarity, explosion)]
    return rows[gaps.index(min(gaps))]["group_size"]


# --------------------------------------------------------------------------- verdicts

#: the layer-wise quantity each per-layer claim records (the others record one row per configuration)
PER_LAYER = {"claim1": "activation_variance", "claim2": "activation_variance", "claim4": "grad_norm",
             "normfree": "activation_variance"}


def label(spec: str) -> str:
    """A normalizer as the paper names it: ``gn(group_size=4)`` -> ``GN (group size 4)``."""
    name, _, args = spec.partition("(")
    if name == "gn" and args.startswith("group_size="):
        return f"GN (group size {args[len('group_size='):].rstrip(')')})"
    return spec.upper() if not args else f"{name.upper()}({args}"


def _short(spec: str) -> str:
    return spec.partition("(")[0].upper()


def _num(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def _sizes(rows: list[dict]) -> list[int]:
    return [r["group_size"] for r in rows if isinstance(r["group_size"], int)]


def missing_data(result: dict) -> str | None:
    """Why ``result`` has too little to plot or judge (no rows, one group size, one layer), else None."""
    claim, rows = result.get("claim", "?"), result.get("rows") or []
    if not rows:
        return f"{claim} measured nothing: no figure and no verdict"
    if claim in ("claim3", "fig6b", "fig9"):
        by_model: dict[str, list[dict]] = {}
        for r in rows:
            by_model.setdefault(r.get("model", ""), []).append(r)
        if all(len(set(_sizes(mine))) < 2 for mine in by_model.values()):
            return (f"{claim} measured one group size only ({_sizes(rows)[0] if _sizes(rows) else 'none'}): "
                    "a curve over group size needs at least two; use a wider model")
    if claim in PER_LAYER and max(r["layer"] for r in rows) < 2:
        return f"{claim} measured fewer than three layers: a curve over depth needs a deeper model"
    return None


def _describe_growth(growth: dict) -> str:
    if growth["kind"] == "exponential" and growth["rate"] < 0:
        return f"shrinking exponentially ({_num(-growth['rate'])} halvings per block)"
    if growth["kind"] == "exponential":
        return f"exponentially ({_num(growth['rate'])} doublings per block)"
    if growth["kind"] == "linear":
        return f"linearly (+{_num(growth['rate'])} per block)"
    return "not at all (flat)"


def _verdict_claim1(result: dict) -> tuple[bool, str]:
    summary = result["summary"]
    criterion = "criterion: a line fits better than an exponential and the variance rises by > 0.05 per block"
    failed = [spec for spec, g in summary.items() if not (g["kind"] == "linear" and g["rate"] > 0.05)]
    rates = ", ".join(f"{_short(spec)} +{_num(g['rate'])}" for spec, g in summary.items())
    if not failed:
        return True, (f"Claim 1 holds: activation variance grows linearly over depth with "
                      f"{', '.join(_short(s) for s in summary)} ({rates} per block; {criterion}).")
    return False, ("Claim 1 does not hold: " + "; ".join(f"{_short(s)} grows {_describe_growth(summary[s])}"
                                                          for s in failed) + f" ({criterion}).")


def _verdict_claim2(result: dict) -> tuple[bool, str]:
    s = result["summary"]
    explodes = [n for n in ("wn", "sws") if s[f"{n}/standard"]["kind"] == "exponential" and s[f"{n}/standard"]["rate"] > 0.5]
    skipinit = s["sws/skipinit"]["kind"] == "flat" and s["wn/skipinit"]["kind"] == "exponential"
    resrelu_flat = all(s[f"{n}/resrelu"]["kind"] == "flat" for n in ("wn", "sws"))
    slower = s["wn/resrelu"]["rate"] < 0.8 * s["wn/standard"]["rate"]
    standard = (f"WN and SWS grow exponentially in the standard ResNet ({_num(s['wn/standard']['rate'])} and "
                f"{_num(s['sws/standard']['rate'])} doublings per block; criterion > 0.5)")
    skip = (f"SkipInit keeps SWS flat while WN still grows {_describe_growth(s['wn/skipinit'])}, as in Figure 3b"
            if skipinit else f"with SkipInit SWS grows {_describe_growth(s['sws/skipinit'])} and WN "
            f"{_describe_growth(s['wn/skipinit'])}, where Figure 3b has SWS flat and WN exponential")
    if resrelu_flat:
        residual = "with the nonlinearity on the residual path both stay flat, as in Figure 3c"
    else:
        residual = (f"Figure 3c does not reproduce: with the nonlinearity on the residual path WN grows "
                    f"{_describe_growth(s['wn/resrelu'])}, {'slower than' if slower else 'no slower than'} in the "
                    f"standard ResNet, and SWS {_describe_growth(s['sws/resrelu'])}, where the paper shows both flat "
                    "(Claim 2's own argument predicts the doubling; see the README)")
    if len(explodes) == 2 and skipinit and (slower or resrelu_flat):
        return True, f"Claim 2 holds: {standard}; {skip}. {residual}."
    if len(explodes) < 2:
        others = [n.upper() for n in ("wn", "sws") if n not in explodes]
        return False, (f"Claim 2 does not hold: {' and '.join(others)} "
                       f"{'does' if len(others) == 1 else 'do'} not grow exponentially in the standard ResNet "
                       f"(they grow {'; '.join(_describe_growth(s[f'{n.lower()}/standard']) for n in others)}; "
                       "criterion: exponential, > 0.5 doublings per block). " + f"{skip}. {residual}.")
    return False, f"Claim 2 holds only in part: {standard}; but {skip}. {residual}."


def _verdict_claim3(result: dict) -> tuple[bool, str]:
    rows = sorted(result["rows"], key=lambda r: r["group_size"])
    sizes, ranks = [r["group_size"] for r in rows], [r["stable_rank"] for r in rows]
    tau = kendall_tau(sizes, ranks)
    fit = result["summary"]["fit"]
    holds = tau <= -0.8 and ranks[0] > 2 * ranks[-1] and fit["slope"] > 0 and fit["r2"] > 0.85
    facts = (f"stable rank {'falls' if tau < 0 else 'does not fall'} with group size (τ = {_num(tau)}; "
             f"{_num(ranks[0], 1)} at group size {sizes[0]}, {_num(ranks[-1], 1)} at {sizes[-1]}), linear fit against "
             f"sqrt(width / group size) R² = {_num(fit['r2'])}, slope {_num(fit['slope'])}")
    criterion = "criterion: τ ≤ −0.8, R² > 0.85, positive slope, group size 1 more than twice the widest group"
    return holds, f"Claim 3 {'holds' if holds else 'does not hold'}: {facts} ({criterion})."


def _verdict_claim4(result: dict) -> tuple[bool, str]:
    summary = result["summary"]
    settings = list(dict.fromkeys(key.rsplit("/", 1)[0] for key in summary))
    parts, failed = [], []
    for setting in settings:
        e = [summary[f"{setting}/{spec}"] for spec in GRADIENT_ORDER]
        ok = e[0] >= e[1] >= e[2] >= e[3] and e[0] - e[3] > 0.03
        model, batch = setting.rsplit("/batch=", 1)
        text = f"{model}, batch {batch}: " + " ≥ ".join(_num(v, 3) for v in e)
        parts.append(text if ok else text + " (out of order)")
        failed += [] if ok else [setting]
    criterion = ("criterion: exponents (decades of gradient norm per layer) in the order IN ≥ BN ≥ GN ≥ LN, IN above LN "
                 "by > 0.03")
    order = "gradient explosion IN ≥ BN ≥ GN ≥ LN"
    if not failed:
        return True, f"Claim 4 holds: {order} in all {len(settings)} settings ({'; '.join(parts)}; {criterion})."
    return False, (f"Claim 4 does not hold in {len(failed)} of {len(settings)} settings: {'; '.join(parts)} "
                   f"({criterion}).")


def _verdict_fig6b(result: dict) -> tuple[bool, str]:
    parts, holds = [], True
    for model, sims in result["summary"].items():
        values = [sims[k] for k in sorted((k for k in sims if k != "ln"), key=lambda k: int(k.split("=")[1][:-1]))]
        values.append(sims["ln"])
        rising = all(a < b for a, b in zip(values, values[1:])) and all(math.isfinite(v) for v in values)
        holds = holds and rising
        parts.append(f"{model}: {' → '.join(_num(v) for v in values)}{'' if rising else ' (not rising)'}")
    criterion = "criterion: strictly rising from group size 1 to LN in every model"
    verb = "holds" if holds else "does not hold"
    return holds, f"Figure 6b {verb}: cosine similarity rises with group size, LN highest ({'; '.join(parts)}; {criterion})."


def _verdict_fig9(result: dict) -> tuple[bool, str]:
    parts, holds = [], True
    for model, s in result["summary"].items():
        ok = s["similarity_tau"] >= 0.8 and s["explosion_tau"] <= -0.8
        holds = holds and ok
        text = (f"{model}: similarity τ = {_num(s['similarity_tau'])}, explosion τ = {_num(s['explosion_tau'])}"
                f", curves cross at group size {s['crossing_group_size']}")
        if "best_group_size" in s:
            text += f", best test accuracy at group size {s['best_group_size']}"
        parts.append(text)
    criterion = ("criterion: Kendall's τ against group size ≥ 0.8 for cosine similarity and ≤ −0.8 for the gradient "
                 "explosion exponent; where the accuracy peaks is reported, not judged")
    verb = "holds" if holds else "does not hold"
    return holds, (f"Figure 9's trade-off {verb}: larger groups raise similarity and lower gradient explosion "
                   f"({'; '.join(parts)}; {criterion}).")


def _verdict_normfree(result: dict) -> tuple[bool, str]:
    summary = result["summary"]
    models = list(dict.fromkeys(key.rsplit("/", 1)[0] for key in summary))
    parts, holds = [], True
    for model in models:
        bn = summary[f"{model}/bn"]
        for spec in ("dyt", "derf"):
            mine = summary[f"{model}/{spec}"]
            ok = (mine["variance_growth"]["kind"] == bn["variance_growth"]["kind"] and math.isfinite(mine["cosine_similarity"])
                  and mine["cosine_similarity"] <= bn["cosine_similarity"] + 0.1)
            holds = holds and ok
            parts.append(f"{model} {spec.upper()}: variance growth {_describe_growth(mine['variance_growth'])}, cosine "
                         f"similarity {_num(mine['cosine_similarity'])} (BN {_num(bn['cosine_similarity'])}), explosion "
                         f"{_num(mine['grad_explosion_exponent'], 3)} (BN {_num(bn['grad_explosion_exponent'], 3)})"
                         + ("" if ok else " (unlike BN)"))
    criterion = ("criterion: at initialization, variance growth of BN's kind and a cosine similarity at most 0.1 "
                 "above BN's, in every model; training decides the rest (the normalizer_free study)")
    verb = "look like BN at initialization" if holds else "do not look like BN at initialization"
    return holds, f"Normalization-free layers {verb}: {'; '.join(parts)} ({criterion})."


VERDICTS: dict[str, Callable[[dict], tuple[bool, str]]] = {
    "claim1": _verdict_claim1, "claim2": _verdict_claim2, "claim3": _verdict_claim3, "claim4": _verdict_claim4,
    "fig6b": _verdict_fig6b, "fig9": _verdict_fig9, "normfree": _verdict_normfree,
}


def verdict(result: dict) -> tuple[bool, str] | None:
    """(holds, one sentence with the numbers and the criterion) for a claim's result; None for a claim with
    no verdict. A result with too little data does not hold, and the sentence says why."""
    judge = VERDICTS.get(result.get("claim", ""))
    if judge is None:
        return None
    gap = missing_data(result)
    if gap is not None:
        return False, f"No verdict: {gap}."
    return judge(result)


def table_rows(result: dict) -> list[dict]:
    """One row per measured configuration: layer-wise claims collapse their layers to first, last and fit."""
    claim, rows = result.get("claim"), result.get("rows") or []
    if claim not in PER_LAYER:
        return rows
    value = PER_LAYER[claim]
    configs: dict[tuple, list[dict]] = {}
    for r in rows:
        key = tuple((k, v) for k, v in r.items() if k not in ("layer", value, "grad_norm"))
        configs.setdefault(key, []).append(r)
    out = []
    for key, mine in configs.items():
        row = dict(key)
        row.update({"layers": len(mine), f"first {value}": mine[0][value], f"last {value}": mine[-1][value]})
        if claim == "normfree":
            row["growth"] = _describe_growth(result["summary"][f"{row['model']}/{row['spec']}"]["variance_growth"])
        elif claim != "claim4":
            growth = result["summary"][row["spec"] if claim == "claim1" else f"{row['spec']}/{row['variant']}"]
            row["growth"] = _describe_growth(growth)
        out.append(row)
    return out


#: The normalization-free question's specs: BN and GN as the references, the 2025 layers, no normalization.
NORMFREE_SPECS = ("bn", "gn(group_size=4)", "dyt", "derf", "seednorm", "none")


def normfree(scale: Scale = SMALL, data: str = "synthetic", device: str = "cpu",
             progress: ProgressCallback | None = None, **kw: Any) -> dict:
    """Do DyT, Derf and SeeDNorm replace BN/GN in CNNs and ResNets? Their predictors at init.

    Per model and spec: variance growth over the residual stream (Claims 1-2's measure), cosine
    similarity, gradient-explosion exponent and stable rank. (Trained accuracy: the
    ``normalizer_free`` study.)
    """
    inputs, classes = _inputs(data, scale, scale.batch_size, scale.batches, device, **kw)
    run = _Run("normfree", scale, device, 2 * len(NORMFREE_SPECS), progress)
    rows, summary = [], {}
    for model in (scale.cnn[0], scale.resnet):
        for spec in NORMFREE_SPECS:
            result = run.score(spec, model, inputs, classes)
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
