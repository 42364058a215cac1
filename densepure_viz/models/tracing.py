"""The networks on a CPU, run as TorchScript traces: the same operators, bit for bit, without the GIL between them.

On a CPU the digits UNet is a few hundred small operators. Run from Python, each one releases the GIL and takes
it back; in the app's server other threads (Gradio, drawing the pictures) take it in between, and the engine then
waits up to Python's switch interval (5 ms) per operator. `python -m bench.tracing` (digits UNet, 8 images, one
torch thread): 9.5 ms a call alone, ~0.8 s while one other Python thread is busy. A trace (`torch.jit.trace`) runs
the same ATen operators in the same order from C++, with the GIL released once for the whole call: 7.7 ms alone,
24 ms beside the busy thread; it also spares the Python of diffusers' and timm's modules.

Bit identity is the contract, as in `engine.batching`: a traced call returns the bits the network returns. The
trace records the operators of one call, so a branch taken in Python on a shape (diffusers' upsampler takes
another path from 64 images on) is frozen in it. So the first call of each input shape runs eagerly, and its
output checks the traces bit for bit; a shape no trace matches gets a trace of its own (a few per network), else
stays eager. Kernels choose by shapes, never by values, so the verdict holds for every input of that shape.
Traces run without TorchScript's graph optimisations (the same operators, no fusion).

Only calls that gain and can keep the bits are traced: networks of TRACEABLE (the embedded models' and the
presets' kinds), not compiled, on the CPU in float32, no autocast, no gradients (an attack's calls run eagerly),
and nothing watching their Python (hooks, a FLOP counter). `DENSEPURE_TRACE=0` turns tracing off (benchmarks
compare both). torch 2.14 marks `torch.jit.trace` deprecated in favour of torch.compile, which would not keep the
bits; should a torch drop it, or fail to trace a network, the networks run eagerly, as with tracing off.
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from diffusers import UNet2DModel
from timm.models.resnet import ResNet
from torch.nn.modules import module as module_hooks
from torch.utils._python_dispatch import _get_current_dispatch_mode

# The networks traced: their forward branches in Python only on shapes and configuration (diffusers' group norm and
# upsampler check sizes; timm's ResNet nothing), which the per-shape check covers. A branch on values would be frozen
# by a trace, for every input, whatever the check saw: other architectures (a hub pair of the command line) run eagerly.
TRACEABLE = (UNet2DModel, ResNet)
TRACE_ENV = "DENSEPURE_TRACE"  # "0": every network call runs eagerly
MAX_TRACES = 3  # traces per network (one per path its shape branches take; diffusers' UNets have two on a CPU)


def is_compiled(module: torch.nn.Module) -> bool:
    """Whether `module.compile()` was called on it (torch keeps the compiled call on the module)."""
    return getattr(module, "_compiled_call_impl", None) is not None


class _Sample(torch.nn.Module):
    """A diffusers UNet returning its `.sample` tensor (what a trace can return)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.unet(x, timesteps).sample


@dataclass
class _Traced:
    """A network's traces (made at eligible calls) and which one gives the eager bits for each input shape."""

    traces: list[Callable] = field(default_factory=list)  # at most MAX_TRACES
    chosen: dict[tuple, Callable | None] = field(default_factory=dict)  # (shapes, dtypes, threads) -> trace, or eager
    lock: threading.Lock = field(default_factory=threading.Lock)  # held only to read or change the two above


_TRACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> _Traced
_TRACES_LOCK = threading.Lock()


def enabled() -> bool:
    """Tracing is on unless DENSEPURE_TRACE=0."""
    return os.environ.get(TRACE_ENV, "1") != "0"


def _eligible(network: object, args: tuple[torch.Tensor, ...]) -> bool:
    """Whether a call can run traced: a network of TRACEABLE, eager, CPU, float32, no gradients, no autocast."""
    return (enabled() and isinstance(network, TRACEABLE) and not is_compiled(network)
            and not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu")
            and all(a.device.type == "cpu" for a in args) and args[0].dtype == torch.float32
            and _weights(network) == (torch.float32, "cpu") and not _observed(network))


def _observed(network: torch.nn.Module) -> bool:
    """Whether something watches the network's Python calls, which a trace would skip: forward hooks on it or on every
    module (a counter of UNet calls), or a dispatch mode (FlopCounterMode)."""
    return bool(network._forward_hooks or network._forward_pre_hooks or module_hooks._global_forward_hooks
                or module_hooks._global_forward_pre_hooks or _get_current_dispatch_mode() is not None)


def _weights(network: torch.nn.Module) -> tuple[torch.dtype, str] | None:
    """The dtype and device type of a network's first parameter (the models' networks are all of one)."""
    first = next(network.parameters(), None)
    return None if first is None else (first.dtype, first.device.type)


def _make_trace(network: torch.nn.Module, kind: str, args: tuple[torch.Tensor, ...]) -> Callable | None:
    """The network traced on copies of `args` (None if it cannot be traced), run without graph optimisations."""
    module = _Sample(network) if kind == "unet" else network
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the shape branches warn that the trace freezes them (checked per shape)
            trace = torch.jit.trace(module, tuple(a.clone() for a in args), check_trace=False)
    except Exception:  # noqa: BLE001 - a network TorchScript cannot trace runs eagerly
        return None

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        with torch.jit.optimized_execution(False):
            return trace(*inputs)

    return run


def _choose(state: _Traced, network: torch.nn.Module, kind: str, args: tuple[torch.Tensor, ...],
            expected: torch.Tensor) -> Callable | None:
    """A trace that returns `expected` (the eager output) on `args`: a kept one, else one traced on them (a shape
    branch took another path) while fewer than MAX_TRACES exist; None: this shape runs eagerly. Runs unlocked (a
    long check never holds up other calls of the network); only the list of traces is changed under the lock."""
    with state.lock:
        kept = list(state.traces)
    for trace in kept:
        if _gives(trace, args, expected):
            return trace
    if len(kept) >= MAX_TRACES:
        return None
    trace = _make_trace(network, kind, args)
    if trace is None or not _gives(trace, args, expected):
        return None
    with state.lock:
        state.traces.append(trace)
    return trace


def _gives(trace: Callable, args: tuple[torch.Tensor, ...], expected: torch.Tensor) -> bool:
    try:
        return torch.equal(trace(*args), expected)
    except Exception:  # noqa: BLE001 - the trace refuses this shape: eager
        return False


def run_network(network: Callable, kind: str, *args: torch.Tensor) -> torch.Tensor:
    """`network(*args)` as a tensor (a UNet's `.sample`): through a trace where that keeps the bits, else eagerly.

    kind: "unet" (x, timesteps) or "classifier" (x); `network` may be any callable (a batcher's view passes through).
    The first call of a shape runs eagerly and returns the eager output, after checking the traces against it.
    """
    eager = (lambda *a: network(*a).sample) if kind == "unet" else network
    if not _eligible(network, args):
        return eager(*args)
    with _TRACES_LOCK:
        state = _TRACES.setdefault(network, _Traced())
    key = (tuple(a.shape for a in args), tuple(a.dtype for a in args), torch.get_num_threads())
    with state.lock:
        known, trace = key in state.chosen, state.chosen.get(key)
    if known:
        return trace(*args) if trace is not None else eager(*args)
    out = eager(*args)  # the shape's first call: its answer, and what the traces are checked against
    chosen = _choose(state, network, kind, args, out)
    with state.lock:
        state.chosen.setdefault(key, chosen)  # two first calls at once: the first verdict stays
    return out


__all__ = ["TRACE_ENV", "enabled", "is_compiled", "run_network"]
