"""Retry with exponential backoff and jitter, for transient target faults only.

Whether to retry is decided by the error's class (:class:`TransientTargetError`), never by
its message.  Permanent errors (bad request, wrong dimension, auth) propagate at once.
Waits are interruptible: once ``stop`` is set (Ctrl-C), the pending retry is abandoned and
the last error is raised, so an interrupt never waits out a long backoff.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from cortex.errors import TransientTargetError

T = TypeVar("T")


class StopFlag(Protocol):
    """What ``RetryPolicy.stop`` needs: a ``threading.Event`` or anything that waits like one."""

    def is_set(self) -> bool: ...
    def wait(self, timeout: float) -> bool: ...


@dataclass
class RetryPolicy:
    retries: int = 8  # attempts after the first (--retries)
    base_seconds: float = 0.5
    max_seconds: float = 30.0  # cap of one delay (--retry-max-seconds)
    sleep: Callable[[float], None] | None = None  # injectable for tests; default: time.sleep / stop.wait
    on_retry: Callable[[int, float, Exception], None] | None = None
    stop: StopFlag | None = None  # set: abandon instead of waiting for the next attempt

    def delay(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (1-based): uniform in [cap/2, cap], the cap doubling up to max_seconds.

        Half fixed, half jitter: delays never shrink from one attempt to the next, and parallel
        writers hitting the same overloaded server spread out instead of retrying in lockstep.
        """
        cap = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        return cap / 2 + random.uniform(0, cap / 2)

    def wait(self, seconds: float) -> None:
        if self.sleep is not None:
            self.sleep(seconds)
        elif self.stop is not None:
            self.stop.wait(seconds)
        else:
            time.sleep(seconds)


class GaveUp(TransientTargetError):
    """Retries exhausted on a transient fault."""


def with_retries(fn: Callable[[], T], policy: RetryPolicy, what: str = "request") -> T:
    """``fn()``, retried on :class:`TransientTargetError` per ``policy``; other errors propagate at once."""
    attempt = 0
    while True:
        try:
            return fn()
        except TransientTargetError as e:
            if policy.stop is not None and policy.stop.is_set():
                raise  # interrupted: abandon this request; the checkpoint stays before it
            attempt += 1
            if attempt > policy.retries:
                raise GaveUp(f"{what}: gave up after {policy.retries} retries: {e}") from e
            d = policy.delay(attempt)
            if policy.on_retry is not None:
                policy.on_retry(attempt, d, e)
            policy.wait(d)
            if policy.stop is not None and policy.stop.is_set():
                raise
