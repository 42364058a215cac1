"""Identical requests computed once: a small keyed store of finished results and of those in flight.

A class following its teacher sends the same request thirty times at once (the same sample, the
defaults, seed 0). Every result of the engine is a function of its request alone (each random draw
has its own seeded stream), so the first of them computes it and the others receive that very
result: from the store when it is finished, or by waiting for the request that is computing it.
The store is bounded (least recently used out first). A computation that fails or is cancelled
publishes nothing; a request that waited for it then computes the result itself.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

V = TypeVar("V")
CAPACITY = 16  # finished results kept
WAIT_S = 300.0  # longest wait for another request's computation before computing alone


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes: two uploads of the same picture name the same input."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Claim(Generic[V]):
    """A request's ticket for one key: a finished result to reuse, or the duty to compute it.

    value is None: compute the result, `publish` it, and `release` the claim in all cases (a `finally`).
    """

    store: SharedResults[V]
    key: Hashable
    value: V | None  # the shared result, when one was ready
    owner: bool  # this request computes the result for the others waiting on the key

    def publish(self, value: V) -> None:
        """Keep `value` for later requests and hand it to those waiting."""
        self.store._publish(self.key, value, self.owner)
        self.owner = False

    def release(self) -> None:
        """Give up the key without a result (failure, cancellation); no-op after publish."""
        if self.owner:
            self.store._abandon(self.key)
            self.owner = False


class SharedResults(Generic[V]):
    """Results by request key, each computed once while it stays in the store (thread-safe)."""

    def __init__(self, capacity: int = CAPACITY, wait_s: float = WAIT_S):
        self.capacity = capacity
        self.wait_s = wait_s
        self.computed = 0  # results published
        self.shared = 0  # requests answered with a result another request computed
        self._done: OrderedDict[Hashable, V] = OrderedDict()
        self._flight: dict[Hashable, threading.Event] = {}  # keys being computed -> set when they end
        self._lock = threading.Lock()

    def claim(self, key: Hashable) -> Claim[V]:
        """The finished result of `key`, or after waiting for the request computing it; else the duty to compute it."""
        while True:
            with self._lock:
                if key in self._done:
                    self._done.move_to_end(key)
                    self.shared += 1
                    return Claim(self, key, self._done[key], owner=False)
                ended = self._flight.get(key)
                if ended is None:
                    self._flight[key] = threading.Event()
                    return Claim(self, key, None, owner=True)
            if not ended.wait(self.wait_s):  # the owner is slow or stuck: compute alone, publish as usual
                return Claim(self, key, None, owner=False)

    def _publish(self, key: Hashable, value: V, owner: bool) -> None:
        with self._lock:
            self._done[key] = value
            self._done.move_to_end(key)
            while len(self._done) > self.capacity:
                self._done.popitem(last=False)
            self.computed += 1
            ended = self._flight.pop(key, None) if owner else None
        if ended is not None:
            ended.set()

    def _abandon(self, key: Hashable) -> None:
        with self._lock:
            ended = self._flight.pop(key, None)
        if ended is not None:
            ended.set()
