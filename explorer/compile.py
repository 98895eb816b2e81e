"""Compiled normalized layers: any composition at fused-kernel speed, without hand kernels.

The units compiled are a model's :class:`~explorer.norm.Normalizer` modules (center, scale, gate,
bound, affine, activation and regularizer of one placement: ``at=pre`` steps, post steps, bare
normalizers) and the weight parametrizations of its ops, whenever they run something beyond
torch's fused ``torch.compile`` (inductor: C++ on a CPU, Triton on a GPU) traces whatever the plugins'
modules do, so a new primitive gets the speed-up without writing a kernel. Native BN/LN/GN/IN
normalizers and the conv/linear ops stay as they are: they are fused already.

Compiled code lives in a process-wide cache keyed by the unit's *structure* (module types and
their constants, parameter shapes — not parameter values) and the input's shape, layout, dtype,
device and mode, so layers and trials with the same composition and shapes share it. Each key gets
its own copy of the forward's code object, so dynamo's per-function recompile limit is never
reached and no key ever recompiles another; shapes are static (``dynamic=False``): the training
harness never sees a partial batch and evaluation runs eager.

Where compiling cannot run — no C++ compiler, an op inductor does not support, a plugin's primitive
that breaks tracing (``fullgraph=True``: it fails before anything runs) — the eager path runs and
one warning line per reason is printed per process; nothing fails for it.

Whether compiling pays is decided by :class:`CompileController` (``compile = "auto"``): see
:meth:`CompileController.decide` and the README's performance section for the break-even.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.overrides import TorchFunctionMode

from explorer.errors import NormxError
from explorer.norm import NormalizedLayer, Normalizer

__all__ = ["COMPILE_MODES", "CompileController", "CompileModeError", "compile_available", "compile_stats",
           "compile_units", "parse_compile_mode", "structure_key"]

#: The values of ``compile`` (study files, ``TrainConfig``, ``--compile``).
COMPILE_MODES: tuple[str | bool, ...] = ("auto", True, False)
VALID = '"auto", true or false'

#: Break-even priors, until this process has measured its own (seconds; see the README), set
#: above what a 2-core CPU measured so that a wrong guess errs towards eager (GPU: not measured):
#: the first compile in a process (inductor's start-up: imports, the C++ runtime header),
FIRST_COMPILE_S = {"cpu": 20.0, "cuda": 30.0}
#: each further distinct (structure, shape) key, forward + backward,
KEY_COMPILE_S = {"cpu": 6.0, "cuda": 8.0}
#: and the speed-up of a generic layer's forward + backward once compiled (conservative).
SPEEDUP = 3.0
#: forward + backward of a layer ≈ this many times its forward (autograd's backward ≈ 2 forwards).
FWD_BWD_FACTOR = 3.0


class CompileModeError(NormxError, ValueError):
    """A ``compile`` value that is none of auto, true, false."""


def parse_compile_mode(value: Any) -> str | bool:
    """``"auto"``, True or False from a setting (booleans, or the strings auto/true/false)."""
    if isinstance(value, bool) or value == "auto":
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "auto"):
        return {"true": True, "false": False, "auto": "auto"}[value.lower()]
    raise CompileModeError(f"compile must be {VALID}, got {value!r}")


# --------------------------------------------------------------------------- process-wide state


@dataclass
class _Entry:
    fn: Callable[..., Tensor] | None = None
    #: why this key runs eager (a compile failure), else None
    failed: str | None = None
    compile_s: float | None = None


_CACHE: dict[tuple, _Entry] = {}
_WARNED: set[str] = set()
#: compile_s: each key's first compiled forward (tracing, forward + backward graphs, forward code);
#: key_pass_s: per new key, a compile pass's time minus an eager pass (the whole cost, backward code too)
_STATS: dict[str, Any] = {"compiled_keys": 0, "cache_hits": 0, "fallbacks": 0, "compile_s": [], "key_pass_s": []}
_AVAILABLE: dict[str, tuple[bool, str]] = {}
#: The clock every timing here reads; tests put a fake one in its place, so that what auto decides
#: depends on the seconds they set, not on how busy the machine is.
clock: Callable[[], float] = time.perf_counter


def _warn_once(reason: str) -> None:
    """One line on stderr per distinct reason, per process."""
    if reason in _WARNED:
        return
    _WARNED.add(reason)
    print(f"normx: warning: {reason}; running eager (same results, slower)", file=sys.stderr)


def compile_available(device: torch.device | str = "cpu") -> tuple[bool, str]:
    """(whether torch.compile can generate code for ``device`` here, why not)."""
    kind = torch.device(device).type
    if kind in _AVAILABLE:
        return _AVAILABLE[kind]
    ok, reason = True, ""
    try:
        if kind == "cpu":
            from torch._inductor.cpp_builder import get_cpp_compiler

            get_cpp_compiler()
        elif kind == "cuda":
            import shutil

            import triton  # noqa: F401 - inductor's GPU backend

            if not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
                raise RuntimeError("no C compiler for Triton's launcher")
        else:
            ok, reason = False, f"torch.compile is not used on {kind} devices"
    except Exception as err:  # noqa: BLE001 - any failure here means: no compiler, eager
        ok = False
        reason = ("torch.compile needs a C++ compiler (CXX or g++ on PATH) and found none" if kind == "cpu"
                  else f"torch.compile cannot run on {kind}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    _AVAILABLE[kind] = (ok, reason)
    return ok, reason


def compile_stats() -> dict[str, Any]:
    """Counts of this process: compiled keys, cache hits, fallbacks, measured compile seconds."""
    return {**_STATS, "compile_s": list(_STATS["compile_s"]), "key_pass_s": list(_STATS["key_pass_s"]),
            "cached_keys": len(_CACHE)}


# --------------------------------------------------------------------------- units and keys


def is_generic(norm: Normalizer) -> bool:
    """Whether a normalizer runs anything beyond one of torch's fused kernels (so compiling can fuse it).

    A native path stays eager — inductor's own batch/group norm are slower than torch's kernels on a
    CPU (1.4-5.5x, ``bench_compile.py``) — unless its scale module says the native op is a
    composite of several kernels (``compile_native = True``, as ``F.rms_norm`` on a CPU).
    """
    if norm.native:
        return bool(getattr(norm.scale, "compile_native", False))
    return any(m is not None for m in (norm.center, norm.scale, norm.gate, norm.bound, norm.regularizer))


def compile_units(model: nn.Module) -> list[nn.Module]:
    """The modules of ``model`` compiled one by one: its normalizers that run a generic path (at
    either placement, or bare) and the weight parametrizations of its normalized layers' ops.

    The conv/linear op itself stays in torch's kernel (inductor calls the same one), so a native
    normalizer next to a generic step is never decomposed.
    """
    return [unit for unit, _ in _labelled_units(model)]


def _labelled_units(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(unit, what to call it in a warning: the layer's spec and the unit's part)."""
    units: list[tuple[nn.Module, str]] = []

    def visit(module: nn.Module, label: str | None = None) -> None:
        if isinstance(module, Normalizer):
            if is_generic(module):
                units.append((module, label or _describe_unit(module)))
            return
        if isinstance(module, NormalizedLayer):
            spec = str(module.spec)
            if parametrize.is_parametrized(module.op, "weight"):
                units.extend((p, f"{spec} (its weight)") for p in module.op.parametrizations.weight)
            if module.pre is not None:
                visit(module.pre, f"{spec} (its at=pre steps)")
            visit(module.post, spec)
            return
        for child in module.children():
            visit(child)

    visit(model)
    return units


_SKIP_ATTRS = {"training", "_parameters", "_buffers", "_non_persistent_buffers_set", "_modules", "_state_dict_hooks",
               "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks", "forward",
               "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs",
               "_is_full_backward_hook", "regularizer_loss", "_normx_dispatch"}


def _describe(value: Any) -> str:
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (tuple, list, frozenset, set)):
        return type(value).__name__ + "(" + ",".join(_describe(v) for v in value) + ")"
    if isinstance(value, types.MethodType):
        return f"method {value.__func__.__qualname__}"
    return type(value).__qualname__


def structure_key(module: nn.Module) -> str:
    """The unit's structure: module types, their constants, parameter/buffer shapes; not values."""
    lines = []
    for name, sub in module.named_modules():
        attrs = ",".join(f"{k}={_describe(v)}" for k, v in sorted(vars(sub).items()) if k not in _SKIP_ATTRS)
        lines.append(f"{name}:{type(sub).__module__}.{type(sub).__qualname__}({attrs})")
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        lines.append(f"{name}:{tuple(t.shape)}:{t.dtype}:{t.requires_grad}")
    return "\n".join(lines)


def _input_key(module: nn.Module, x: Tensor) -> tuple:
    device = x.device.type
    return (tuple(x.shape), x.stride(), x.dtype, str(x.device), module.training, torch.is_grad_enabled(),
            x.requires_grad, torch.is_autocast_enabled(device) if device in ("cpu", "cuda") else False)


class _FusibleRelu(TorchFunctionMode):
    """Traces ReLU as ``where(y > 0, y, 0)`` inside compiled units: the same values and gradients
    (0 at y = 0, as ReLU's), but inductor's CPU code for ReLU's own backward saves a boolean mask,
    and its AVX-512 store of booleans made a compiled ``… | affine | relu`` layer 5-7x *slower* than
    eager (``bench_compile.py layers``, torch 2.14); the ``where`` form is recomputed in the backward
    and fuses. It applies to every primitive's ReLU, a plugin's too, and only while compiling."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELUS and args:
            y = args[0]
            return torch.where(y > 0, y, torch.zeros((), dtype=y.dtype, device=y.device))
        return func(*args, **(kwargs or {}))


_RELUS = {torch.relu, torch.nn.functional.relu, Tensor.relu}


def _traceable(forward: Callable) -> Callable:
    """``forward`` as compiled: under :class:`_FusibleRelu`."""

    def run(module: nn.Module, x: Tensor) -> Tensor:
        with _FusibleRelu():
            return forward(module, x)

    return run


_FRESH = [0]


def _fresh_function(fn: Callable) -> Callable:
    """A copy of ``fn`` with its own code object, hence its own dynamo cache (and recompile limit)."""
    _FRESH[0] += 1
    code = fn.__code__.replace(co_name=f"{fn.__code__.co_name}_normx{_FRESH[0]}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)


class _Dispatch:
    """Installed as a unit's ``forward``: compiled code for its key when allowed, else eager."""

    def __init__(self, module: nn.Module, label: str = ""):
        self.module = module
        self.label = label or _describe_unit(module)
        self.eager = type(module).forward.__get__(module)
        self.structure = structure_key(module)
        #: may compile keys not in the cache; use cached ones
        self.allow_new = False
        self.use_cached = False
        self.calls = 0
        #: forward seconds of the latest eager call, while ``timing`` (CUDA: synchronised, so only then)
        self.last_eager_s = 0.0
        self.timing = False
        self.last_key: tuple | None = None

    def key(self, x: Tensor) -> tuple:
        return (type(self.module), self.structure, *_input_key(self.module, x))

    def __call__(self, x: Tensor) -> Tensor:
        self.calls += 1
        key = self.key(x)
        self.last_key = key
        entry = _CACHE.get(key)
        # The first call of each layer runs eager: it sizes lazily created running statistics,
        # which would otherwise change a buffer's shape under the compiled code.
        usable = self.calls > 1 and (self.use_cached or self.allow_new)
        if usable and entry is not None and entry.fn is not None:
            _STATS["cache_hits"] += 1
            return self._run(key, entry, x)
        if usable and entry is None and self.allow_new:
            entry = _CACHE[key] = _Entry()
            ok, reason = compile_available(x.device)
            if not ok:
                entry.failed = reason
            else:
                entry.fn = torch.compile(_fresh_function(_traceable(type(self.module).forward)), dynamic=False,
                                             fullgraph=True)
                start = clock()
                if self._probe(entry, x):
                    entry.compile_s = clock() - start
                    _STATS["compiled_keys"] += 1
                    _STATS["compile_s"].append(entry.compile_s)
                    return self._run(key, entry, x)
        if entry is not None and entry.failed and usable:
            _warn_once(entry.failed)
        return self._eager(x)

    def _eager(self, x: Tensor) -> Tensor:
        if not self.timing:
            return self.eager(x)
        cuda = x.is_cuda
        if cuda:
            torch.cuda.synchronize(x.device)
        start = clock()
        out = self.eager(x)
        if cuda:
            torch.cuda.synchronize(x.device)
        self.last_eager_s = clock() - start
        return out

    def _probe(self, entry: _Entry, x: Tensor) -> bool:
        """Compile forward *and* backward now, on a copy of the layer and a random input of the same
        key, so that a failure (tracing, codegen, the backward's too) falls back here instead of
        surfacing in the caller's ``loss.backward()``; the copy keeps the real layer's buffers untouched."""
        try:
            # a regularizer's latest loss is a graph's output, which deepcopy refuses: the copy starts without
            memo = {id(m.regularizer_loss): None for m in self.module.modules()
                    if isinstance(getattr(m, "regularizer_loss", None), Tensor)}
            clone = copy.deepcopy(self.module, memo)
            probe = torch.randn_like(x).requires_grad_(x.requires_grad)
            out = entry.fn(clone, probe)
            if out.requires_grad:
                loss = out.float().square().mean()
                for m in clone.modules():
                    if isinstance(getattr(m, "regularizer_loss", None), Tensor):
                        loss = loss + m.regularizer_loss
                loss.backward()
            return True
        except NormxError:
            entry.fn = None
            return False  # the eager call raises it again, as the user's error it is
        except Exception as err:  # noqa: BLE001 - a failed compile is a warning and the eager path
            entry.fn = None
            entry.failed = _failure_reason(err, self.module, self.label)
            _STATS["fallbacks"] += 1
            _warn_once(entry.failed)
            return False

    def _run(self, key: tuple, entry: _Entry, x: Tensor) -> Tensor:
        try:
            return entry.fn(self.module, x)
        except NormxError:
            raise
        except Exception as err:  # noqa: BLE001 - a failed compile is a warning and the eager path
            out = self._eager(x)  # the user's error, if it is one, is raised by the eager path
            entry.fn = None
            entry.failed = _failure_reason(err, self.module, self.label)
            _STATS["fallbacks"] += 1
            _warn_once(entry.failed)
            return out


def _failure_reason(err: BaseException, module: nn.Module, label: str) -> str:
    text = str(err).strip().splitlines()
    first = next((line.strip() for line in text if line.strip()), "")
    return f"torch.compile failed for {label} ({type(err).__name__}: {first[:160]})"


def _describe_unit(module: nn.Module) -> str:
    """The steps of a unit, by module type (a normalizer does not know its spec)."""
    names = [type(m).__name__ for _, m in module.named_children()]
    return f"{type(module).__name__}({', '.join(names)})" if names else type(module).__name__


def _install(units: list[tuple[nn.Module, str]]) -> list[_Dispatch]:
    out = []
    for unit, label in units:
        dispatch = getattr(unit, "_normx_dispatch", None)
        if dispatch is None:
            dispatch = _Dispatch(unit, label)
            object.__setattr__(unit, "_normx_dispatch", dispatch)
            object.__setattr__(unit, "forward", dispatch)
        out.append(dispatch)
    return out


def _uninstall(units: list[nn.Module]) -> None:
    for unit in units:
        if getattr(unit, "_normx_dispatch", None) is not None:
            del unit.__dict__["forward"]
            del unit.__dict__["_normx_dispatch"]


# --------------------------------------------------------------------------- the per-run decision


@dataclass
class CompileController:
    """Decides, for one model's run of ``planned`` passes (training steps, screening batches), whether
    its generic layers run compiled, and switches them.

    ``mode=True`` compiles from the start (each layer's first call runs eager); ``False`` never;
    ``"auto"`` runs two eager passes, then compiles only if the estimated saving over the remaining
    passes exceeds the estimated compile cost (:meth:`decide`), and goes back to eager if the
    compiled passes turn out no faster. Call :meth:`pass_done` after each pass and :meth:`close`
    at the end (the model is left as it was).
    """

    model: nn.Module
    mode: str | bool = "auto"
    planned: int = 1
    device: torch.device | str = "cpu"
    units: list[nn.Module] = field(default_factory=list)
    passes: int = 0
    #: what was decided and why (for the trial's record and the benchmarks)
    decision: str = ""
    eager_pass_s: float | None = None
    compiled_pass_s: list[float] = field(default_factory=list)
    _dispatch: list[_Dispatch] = field(default_factory=list)
    _switched_at: int | None = None
    _last: float | None = None
    _keys_before: int = 0

    def __post_init__(self) -> None:
        self.mode = parse_compile_mode(self.mode)
        self.device = torch.device(self.device)
        if self.mode is False:
            self.decision = "eager (compile = false)"
            return
        labelled = _labelled_units(self.model)
        self.units = [unit for unit, _ in labelled]
        if not self.units:
            self.decision = "eager (every layer runs a native kernel)"
            return
        ok, reason = compile_available(self.device)
        if not ok:
            _warn_once(reason)
            self.decision = f"eager ({reason})"
            self.units = []
            return
        self._dispatch = _install(labelled)
        for d in self._dispatch:
            d.use_cached = True  # compiled code already in this process costs nothing
            d.timing = self.mode == "auto"
        if self.mode is True:
            self._switch("compiled (compile = true)")
        self._last = clock()

    def _switch(self, why: str) -> None:
        for d in self._dispatch:
            d.allow_new = True
            d.timing = False
        self._switched_at = self.passes
        self._keys_before = _STATS["compiled_keys"]
        self.decision = why

    def new_keys(self) -> int:
        """How many of the units' latest keys are not compiled yet in this process."""
        keys = {d.last_key for d in self._dispatch}
        return sum(1 for k in keys if k is not None and k not in _CACHE)

    def compile_cost(self, new_keys: int) -> float:
        """Estimated seconds to compile ``new_keys`` keys: measured in this process when it has
        compiled before, else the priors (inductor's start-up once per process, then per key)."""
        kind = self.device.type if self.device.type in KEY_COMPILE_S else "cpu"
        measured = _STATS["key_pass_s"] or _STATS["compile_s"]
        if measured:
            return new_keys * statistics.median(measured)
        return FIRST_COMPILE_S[kind] + max(0, new_keys - 1) * KEY_COMPILE_S[kind] if new_keys else 0.0

    def decide(self, pass_s: float, remaining: int) -> tuple[bool, str]:
        """Compile iff ``remaining × saving > compile cost`` (seconds), where saving per pass is the
        layers' measured eager forward time × :data:`FWD_BWD_FACTOR` × (1 − 1/:data:`SPEEDUP`),
        at most the whole pass; already compiled keys cost nothing."""
        unit_fwd = sum(d.last_eager_s for d in self._dispatch)
        saving = min(pass_s, FWD_BWD_FACTOR * unit_fwd) * (1 - 1 / SPEEDUP)
        cost = self.compile_cost(self.new_keys())
        gain = remaining * saving
        verdict = gain > cost
        what = "compiled" if verdict else "eager"
        return verdict, (f"{what} (auto: {remaining} passes x {saving:.3f} s saved = {gain:.1f} s "
                         f"{'>' if verdict else '<='} {cost:.1f} s to compile)")

    def pass_done(self) -> None:
        """Record one finished pass (a training step, a screening batch) and act on it."""
        if not self._dispatch:
            return
        measuring = self.mode == "auto" and (self._switched_at is None or len(self.compiled_pass_s) < 3)
        if measuring and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the pass's time, not its launch time
        now = clock()
        seconds = now - (self._last or now)
        self._last = now
        self.passes += 1
        if self.mode == "auto" and self._switched_at is None and self.passes == 2:
            self.eager_pass_s = seconds
            remaining = self.planned - self.passes
            compile_now, why = self.decide(seconds, remaining)
            if compile_now:
                self._switch(why)
            else:
                self.decision = why
                _uninstall(self.units)
                self._dispatch = []
        elif self.mode == "auto" and self._switched_at is not None:
            since = self.passes - self._switched_at
            new = _STATS["compiled_keys"] - self._keys_before
            if since == 1 and new and self.eager_pass_s is not None:
                _STATS["key_pass_s"].extend([max(0.0, seconds - self.eager_pass_s) / new] * new)
            if since >= 2:  # the first compiled pass carries the compile time
                self.compiled_pass_s.append(seconds)
            if len(self.compiled_pass_s) == 3 and self.eager_pass_s is not None:
                if statistics.median(self.compiled_pass_s) >= self.eager_pass_s:
                    self.decision += "; back to eager (compiled passes were no faster)"
                    self.close()

    def freeze(self) -> None:
        """From now on use compiled code already in the cache, compile nothing new (evaluation)."""
        for d in self._dispatch:
            d.allow_new = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """An evaluation in the middle of the run: nothing new is compiled (eval mode, another
        batch size), and its seconds count towards no pass's time."""
        allowed = [d.allow_new for d in self._dispatch]
        self.freeze()
        try:
            yield
        finally:
            for d, allow in zip(self._dispatch, allowed):
                d.allow_new = allow
            self._last = clock()

    def close(self) -> None:
        """Restore the layers' eager forward."""
        _uninstall(self.units)
        self._dispatch = []

    def __enter__(self) -> CompileController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
