"""Server-side validation of every request, and the translation of user errors into one-line gr.Error.

The API can be called without the UI (gradio_client, curl), so nothing here trusts the sliders:
numbers are parsed and range-checked, choices are checked against their lists, model ids against the
registry (path-like ids are refused before any lookup), and caps keep one request bounded. The caps are per model
(`limits_for`): one CIFAR-size UNet evaluation costs about 40 digits ones on a CPU, so the cifar10 preset has its
own, lower caps and view defaults; every model's caps also bound its ZeroGPU duration (session.gpu_duration).
The validators only coerce raw values (numbers, choices, names, files) and apply the app's caps; the
engine's configs check every range themselves. Everything raises `InputError`; `user_errors` turns
InputError into gr.Error with its one line, and any other exception (a bug) into a logged server
error with a one-line notice, never a traceback.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from densepure_viz.errors import InputError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Caps on one request of one model (the UI's sliders stop at the same values), its GPU rate and its views' defaults."""

    sigma_max: float = 1.0  # smoothing std on [0, 1] pixels
    purify_seeds: int = 32  # K in the Purify view
    certify_seeds: int = 16  # K per draw in the Certify view
    steps: int = 100  # b, UNet evaluations of the fast sampler
    n0: int = 1_000  # CERTIFY selection draws
    n: int = 10_000  # CERTIFY estimation draws
    radius: float = 10.0  # target radius of sequential CERTIFY
    purify_evals: int = 40_000  # K x evaluated timesteps of one purification
    certify_evals: int = 1_000_000  # (n0 + n) x K x evaluated timesteps of one certification
    attack_steps: int = 100  # PGD iterations
    density_draws: int = 64  # noise draws in the High-density view
    seed: int = 2**31 - 1  # largest base seed
    toy_seeds: int = 256  # K in the 2D world
    toy_steps: int = 1000  # respaced steps in the 2D world (0 = full chain)
    toy_n: int = 20_000  # certification draws in the 2D world
    toy_sigma_max: float = 3.0  # smoothing std in the 2D world
    model_id_chars: int = 100  # longest model id accepted
    # UNet image-evaluations per second assumed on a ZeroGPU slice (half an H200), an estimate from bench/RESULTS.md's
    # H200 figures: it sizes spaces.GPU's duration (session.gpu_duration), and the caps above keep that duration
    # under session.MAX_GPU_SECONDS
    gpu_rate: float = 10_000.0
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)  # view -> request fields the view switches to


LIMITS = Limits()  # the embedded digits model's; every slider's range (an API value beyond it is refused by Gradio)
# A CIFAR-size UNet evaluation (35.7M parameters, 32x32x3) costs ~12.4 GFLOP against digits' 0.12: on a 2-core CPU
# about 9-14 evaluations/s against ~560. Its caps keep a purification at the cap under ~20 s on such a CPU and every
# request's ZeroGPU duration under the maximum; its views open with certify K = 2, b = 2 (440 evaluations).
CIFAR_LIMITS = Limits(purify_seeds=16, certify_seeds=8, steps=20, n0=100, n=1_000, purify_evals=200,
                      certify_evals=100_000, attack_steps=20, density_draws=8, gpu_rate=2_000.0,
                      defaults={"certify": {"seeds": 2, "steps": 2}})
MODEL_LIMITS: dict[str, Limits] = {"digits": LIMITS, "cifar10": CIFAR_LIMITS}


def limits_for(model: Any) -> Limits:
    """A model's caps: a preset's own (a preset with replaced sources keeps its name and so its caps); any other
    model (a command-line pair of unknown cost) is capped like the largest preset."""
    return MODEL_LIMITS.get(model, CIFAR_LIMITS) if isinstance(model, str) else CIFAR_LIMITS


def within(value: int | float, name: str, cap: int | float, model: str) -> int | float:
    """`value` (already in the app's global range) unless it exceeds `model`'s own cap, refused in one line naming both."""
    if value > cap:
        raise InputError(f"{name} = {value:g} is above the cap for the model {model}: at most {cap:g} per request")
    return value


def capped(value: Any, name: str, cap: str, model: Any, lo: int = 1) -> int:
    """`value` as an integer in lo..LIMITS.<cap> (the app's range, where the sliders stop), then at most the model's
    own <cap> (limits_for), each refused in one line."""
    return int(within(integer(value, name, lo, getattr(LIMITS, cap)), name, getattr(limits_for(model), cap), str(model)))


def number(value: Any, name: str, lo: float, hi: float, integer: bool = False) -> float | int:
    """`value` as a finite number in [lo, hi] (an int when `integer`); numeric strings are accepted.

    The one coercion of raw values, used by the handlers' parsers and by every Slider and Number
    (components.guard_numbers): an API caller can send a string, a list, NaN or 10^400.
    """
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InputError(f"{name} must be a number, got {value[:40]!r}") from None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InputError(f"{name} must be a number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float range
        raise InputError(f"{name} is out of range, got a {value.bit_length()}-bit integer") from None
    if not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value}")
    if integer:
        if value != round(value):
            raise InputError(f"{name} must be a whole number, got {value:g}")
        value = int(round(value))
    if not lo <= value <= hi:
        raise InputError(f"{name} must be in {lo:g}..{hi:g}, got {value:g}")
    return value


def integer(value: Any, name: str, lo: int, hi: int) -> int:
    """`value` as an int in [lo, hi]."""
    return int(number(value, name, lo, hi, integer=True))


def positive(value: Any, name: str, hi: float) -> float:
    """`value` as a finite float in (0, hi]."""
    x = float(number(value, name, -math.inf, math.inf))
    if not 0 < x <= hi:
        raise InputError(f"{name} must be > 0 and <= {hi:g}, got {x:g}")
    return x


def choice(value: Any, name: str, options: Sequence[T]) -> T:
    """`value` if it is one of `options`."""
    if value not in options:
        shown = value[:40] if isinstance(value, str) else value
        raise InputError(f"{name} must be one of {', '.join(map(str, options))}; got {shown!r}")
    return value


def model_id(value: Any, known: Sequence[str]) -> str:
    """A registry model name; path-like ids (`..`, slashes, absolute paths) are refused outright."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"model must be a name, one of {', '.join(known)}")
    if len(value) > LIMITS.model_id_chars:
        raise InputError(f"model id is too long ({len(value)} characters); choose one of {', '.join(known)}")
    if ".." in value or "/" in value or "\\" in value or value.startswith("~") or "\x00" in value:
        raise InputError(f"model must be a registry name ({', '.join(known)}), not a path: {value[:40]!r}")
    if value not in known:
        raise InputError(f"unknown model {value[:40]!r}; choose one of {', '.join(known)}")
    return value


def image_file(value: Any) -> str:
    """The path of an input image handed over by Gradio (it lives in Gradio's upload cache)."""
    if value is None or value == "":
        raise InputError("no input image: upload one, draw one, or pick a sample")
    if isinstance(value, dict):  # an API caller passing FileData as a plain dict
        value = value.get("path")
    if not isinstance(value, (str, Path)):
        raise InputError(f"the image must be a file, got {type(value).__name__}")
    return str(value)


def evaluations(count: int, cap: int, what: str, model: str | None = None) -> None:
    """Refuse a request whose network evaluations exceed `cap` (`model`'s, named in the message when given)."""
    if count > cap:
        on = f" for the model {model}" if model else ""
        raise InputError(f"{what} needs {count:,} image evaluations; the limit per request is {cap:,}{on} "
                         "(lower K, steps or n)")


def _to_gr_error(exc: BaseException) -> gr.Error:
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, InputError):
        return gr.Error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, print_exception=False)
    if type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError):
        return gr.Error("out of memory: lower K, steps or n and try again", print_exception=False)
    log.exception("unexpected error in a request")
    return gr.Error(f"internal error ({type(exc).__name__}); it was logged on the server", print_exception=False)


def user_errors(fn: Callable) -> Callable:
    """Decorate a handler (function or generator): every exception reaches the user as one-line gr.Error."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except GeneratorExit:
                raise
            except Exception as exc:  # noqa: BLE001 - the point is to catch everything
                raise _to_gr_error(exc) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _to_gr_error(exc) from None

    return wrapper
