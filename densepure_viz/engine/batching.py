"""Concurrent purifications computed together: their network calls run as one batch, each keeping its own bits.

A class sends thirty different Purify requests at once (their own images, their own seeds). Each request
runs the engine as it would alone (`purify.purify_stream`), on a *view* of the shared models
(`NetworkBatcher.session`) whose UNet and classifier hand every call to one worker thread. The worker
gathers the calls waiting at the same time (a round), concatenates those of equal shape along dim 0,
makes one network call for them and hands each request its own rows. Only the network evaluations are
shared: every random draw stays the request's own (`seeding`: keyed CPU generators), and so does
everything between two network calls (the DDPM step, the vote).

Bit identity is the contract: a request's frames and result are those it gets alone. Concatenating is not
enough for that. On a CPU, oneDNN's convolutions and MKL's matrix products choose their algorithm, and so
the order of their sums, by the batch size and the thread count. Measured on the digits model (2 threads):
K = 8 rows give the same bits inside batches of 8 to 63 rows and other bits from 64 rows on; with 1 thread
only up to 15 rows; one row (the UNet call at t*, shared by a request's K seeds) gives other bits in any
larger batch (a few 1e-7, enough to move a pixel and, rarely, a vote). GPUs choose by shape too. So the
worker concatenates only calls of one shape (n calls of k rows, the same per-row shape, dtype and
precision), and only at a count n verified on this machine: the first time a (network, shape, n, threads)
comes up, it runs a probe of random inputs both ways (one call of n * k rows, n calls of k rows) and
compares the bits. Kernels choose by shapes, never by values, so the verdict holds for every input of that
shape. Where the bits differ, those calls run one by one, exactly as alone. Counts tried are powers of two
(a few probes per shape), none above a count found to differ.

Rounds: a round starts when every open session has a call waiting, or GATHER_S after the first waiting
call (or after the previous round, whichever is later): a request busy elsewhere (its frame being drawn and
sent) joins the next round rather than holding the others. Rounds run one at a time: the engine computes one
batch at a time, whatever the number of requests. A session alone is served at once.

A request never fails another's batch: a bad input is refused before it opens a session, a cancelled request
closes its session (its calls stop; the others no longer wait for it), and a batched call that raises is run
again call by call, so only the call that fails gets its error. Calls that need gradients (the adaptive
attack) and compiled networks (bucketed batches, `runtime`) are not batched: a view of compiled models is
the models themselves, and a gradient call runs at once in the caller's thread.
"""

from __future__ import annotations

import copy
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from densepure_viz.engine.runtime import auto_batch
from densepure_viz.models.registry import DensePureModels
from densepure_viz.models.tracing import is_compiled, run_network

GATHER_S = 0.05  # longest wait for the open sessions' next calls before a round starts without the late ones
PROBE_SEED = 22  # seed of the probes' random inputs (a CPU generator of their own; the global RNG is never used)


@dataclass
class BatchStats:
    """What the batcher did (for tests and benchmarks)."""

    rounds: int = 0  # rounds run
    calls: int = 0  # network calls the sessions asked for
    runs: int = 0  # network calls made for them (a batch counts once; probes not counted)
    batched: int = 0  # calls computed inside a batch of several
    largest_round: int = 0  # most calls gathered in one round
    probes: int = 0  # shapes verified (each a batched call and its calls one by one, on random inputs)


@dataclass(eq=False)
class _Call:
    """One network call of a session, waiting for the worker."""

    session: int  # the session that asked
    network: torch.nn.Module  # the real network
    kind: str  # "unet" (x, timesteps) -> eps, or "classifier" (x) -> logits
    args: tuple[torch.Tensor, ...]  # (k, ...) each: x, and for the UNet the (k,) timesteps
    precision: tuple  # (autocast enabled, its dtype) on the device, as the caller had it
    max_rows: int  # rows one call of this model may take (runtime.auto_batch)
    out: torch.Tensor | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def rows(self) -> int:
        return len(self.args[0])

    @property
    def shape_key(self) -> tuple:
        """What calls batched together must share: kind, rows, per-row shapes, dtypes, device, memory layout, precision."""
        x = self.args[0]
        layout = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        return (self.kind, self.rows, tuple(tuple(a.shape[1:]) for a in self.args), tuple(a.dtype for a in self.args),
                x.device, layout, self.precision)

    def run(self, args: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The real network on `args`, as the caller would have run it (inference mode, its precision)."""
        enabled, dtype = self.precision
        device = self.args[0].device.type
        with torch.inference_mode(), (torch.autocast(device, dtype=dtype) if enabled else nullcontext()):
            return run_network(self.network, self.kind, *args)


@dataclass
class _UNetOutput:
    """What a view's UNet returns: the field of diffusers' UNet2DOutput the engine reads."""

    sample: torch.Tensor


class _SharedNetwork:
    """A network in a session's view: each call is computed by the batcher's worker, with other sessions' calls."""

    def __init__(self, batcher: NetworkBatcher, session: int, network: torch.nn.Module, kind: str, max_rows: int):
        self.batcher, self.session, self.network, self.kind, self.max_rows = batcher, session, network, kind, max_rows
        self.config = getattr(network, "config", None)  # the UNet's config (channels, sample size)

    def __call__(self, x: torch.Tensor, *rest: Any) -> Any:
        args = (x, *rest)
        usual = all(isinstance(a, torch.Tensor) and a.dim() >= 1 and len(a) == len(x) for a in args) and len(x) > 0
        if not (torch.is_inference_mode_enabled() and usual and len(args) == (2 if self.kind == "unet" else 1)):
            return self.network(*args)  # gradients (an attack) or an unusual call: as is, in the caller's thread
        device = x.device.type
        enabled = torch.is_autocast_enabled(device)
        precision = (enabled, torch.get_autocast_dtype(device) if enabled else None)
        out = self.batcher._compute(_Call(self.session, self.network, self.kind, args, precision, self.max_rows))
        return _UNetOutput(out) if self.kind == "unet" else out


class NetworkBatcher:
    """One worker thread computing the network calls of concurrent sessions in rounds (module docstring).

    Thread-safe; the worker starts with the first session and ends when no session is open.
    """

    def __init__(self, gather_s: float = GATHER_S):
        self.gather_s = gather_s
        self.stats = BatchStats()
        self._cond = threading.Condition()
        self._open: set[int] = set()  # sessions open now
        self._next_session = 0
        self._pending: list[_Call] = []  # calls waiting for the next round
        self._since = 0.0  # when the round now gathering may start waiting (first call, or the previous round's end)
        self._worker: threading.Thread | None = None
        # verdicts per network: {(shape key, n, threads): identical}; {(shape key, threads): smallest n that differs}
        self._verdicts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._too_many: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @property
    def sessions(self) -> int:
        """Sessions open now (concurrent purifications in their reverse process)."""
        with self._cond:
            return len(self._open)

    @contextmanager
    def session(self, models: DensePureModels) -> Iterator[DensePureModels]:
        """A view of `models` for one request: the same models, its two networks computed with the other open sessions'.

        Compiled models are returned as they are (their batches are bucketed by `runtime`, not here).
        """
        if is_compiled(models.unet) or is_compiled(models.classifier):
            yield models
            return
        with self._cond:
            session = self._next_session
            self._next_session += 1
            self._open.add(session)
            self._start_worker()
        view = copy.copy(models)  # a shallow copy: same weights, scheduler and settings
        rows = auto_batch(models)
        view.unet = _SharedNetwork(self, session, models.unet, "unet", rows)  # type: ignore[assignment]
        view.classifier = _SharedNetwork(self, session, models.classifier, "classifier", rows)  # type: ignore[assignment]
        try:
            yield view
        finally:
            with self._cond:
                self._open.discard(session)
                self._cond.notify_all()  # a round may have been waiting for this session

    def _compute(self, call: _Call) -> torch.Tensor:
        """Queue `call` for the next round and wait for its output (or its own error)."""
        with self._cond:
            if not self._pending:
                self._since = max(self._since, time.monotonic())
            self._pending.append(call)
            self.stats.calls += 1
            self._start_worker()
            self._cond.notify_all()
        call.done.wait()
        if call.error is not None:
            raise call.error
        assert call.out is not None
        return call.out

    # the worker

    def _start_worker(self) -> None:
        """Start the worker thread if none runs (under the lock)."""
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="densepure-batcher", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        try:
            while True:
                with self._cond:
                    calls = self._gather()
                    if calls is None:
                        self._worker = None  # under the lock: a session opening now starts another
                        return
                failure: BaseException | None = None
                try:
                    self._run_round(calls)
                except Exception as exc:  # noqa: BLE001 - a fault of the batcher: the round's callers get it
                    failure = exc
                for call in calls:  # whatever happened, nobody waits forever
                    if not call.done.is_set():
                        call.error = call.error or failure or RuntimeError("the batch was not computed")
                        call.done.set()
                with self._cond:
                    self._since = time.monotonic()  # the served sessions' next calls are on their way
        finally:
            with self._cond:
                if self._worker is threading.current_thread():  # it died of a fault: the next call starts another
                    self._worker = None

    def _gather(self) -> list[_Call] | None:
        """The calls of the next round (under the lock); None when no session is open and nothing waits."""
        while not self._pending:
            if not self._open:
                return None
            self._cond.wait()
        while True:
            waiting = {call.session for call in self._pending}
            left = self._since + self.gather_s - time.monotonic()
            if self._open <= waiting or left <= 0:
                break
            self._cond.wait(left)
        calls, self._pending = self._pending, []
        self.stats.rounds += 1
        self.stats.largest_round = max(self.stats.largest_round, len(calls))
        return calls

    def _run_round(self, calls: list[_Call]) -> None:
        """Each group of calls of one network and shape, in chunks of verified counts; groups in order of arrival."""
        groups: dict[tuple, list[_Call]] = {}
        for call in calls:
            groups.setdefault((id(call.network), call.shape_key), []).append(call)
        for group in groups.values():
            i = 0
            while i < len(group):
                n = self._chunk(group[i], len(group) - i)
                self._run_chunk(group[i:i + n])
                i += n

    def _chunk(self, call: _Call, waiting: int) -> int:
        """How many of `waiting` calls shaped like `call` to run in one batch: a verified power of two, or 1."""
        key = (call.shape_key, torch.get_num_threads())
        limit = self._too_many.setdefault(call.network, {}).get(key, waiting + 1)
        n = 1 << (min(waiting, limit - 1, max(1, call.max_rows // call.rows)).bit_length() - 1)
        while n > 1 and not self._identical(call, n):
            n //= 2
        return n

    def _identical(self, call: _Call, n: int) -> bool:
        """Whether n calls shaped like `call` give, in one batch, the bits each gives alone (probed once, then kept)."""
        key = (call.shape_key, torch.get_num_threads())
        verdicts = self._verdicts.setdefault(call.network, {})
        if (key, n) not in verdicts:
            verdicts[(key, n)] = self._probe(call, n)
            self.stats.probes += 1
            if not verdicts[(key, n)]:
                too_many = self._too_many.setdefault(call.network, {})
                too_many[key] = min(n, too_many.get(key, n))
        return verdicts[(key, n)]

    @staticmethod
    def _probe(call: _Call, n: int) -> bool:
        """n random inputs shaped like `call`'s: one batched call against n calls alone, bit for bit."""
        gen = torch.Generator().manual_seed(PROBE_SEED + n)
        x, *rest = call.args
        top = int(rest[0].max()) + 1 if rest else 1  # timesteps the UNet takes (it was called with these)
        chunks = []
        for _ in range(n):
            xi = torch.empty_like(x).copy_(torch.randn(x.shape, generator=gen))
            ts = [torch.full_like(r, int(torch.randint(top, (1,), generator=gen))) for r in rest]
            chunks.append((xi, *ts))
        try:
            together = call.run(tuple(torch.cat(parts) for parts in zip(*chunks)))
            alone = [call.run(chunk) for chunk in chunks]
        except Exception:  # noqa: BLE001 - a shape the network refuses in a batch: never batch it
            return False
        return all(torch.equal(part, own) for part, own in zip(together.split(call.rows), alone))

    def _run_chunk(self, chunk: list[_Call]) -> None:
        """One batched network call for the chunk (or the call alone), each call handed its rows."""
        if len(chunk) > 1:
            try:
                out = chunk[0].run(tuple(torch.cat(parts) for parts in zip(*(c.args for c in chunk))))
            except Exception:  # noqa: BLE001 - run them one by one: only the call that fails gets the error
                out = None
            if out is not None:
                self.stats.runs += 1
                self.stats.batched += len(chunk)
                for call, rows in zip(chunk, out.split(chunk[0].rows)):
                    call.out = rows.clone()  # its own storage: no request holds another's rows
                    call.done.set()
                return
        for call in chunk:
            try:
                call.out = call.run(call.args)
                self.stats.runs += 1
            except BaseException as exc:  # noqa: BLE001 - the caller re-raises it in its own thread
                call.error = exc
            call.done.set()


def batched(batcher: NetworkBatcher | None, models: DensePureModels):
    """`batcher.session(models)`, or the models themselves (a context manager either way) when there is no batcher."""
    return batcher.session(models) if batcher is not None else nullcontext(models)


__all__ = ["BatchStats", "GATHER_S", "NetworkBatcher", "batched"]
