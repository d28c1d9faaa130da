"""Retry with exponential backoff and full jitter, for transient target faults only.

Whether to retry is decided by the error's class (:class:`TransientTargetError`), never by
its message.  Permanent errors (bad request, wrong dimension, auth) propagate at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cortex.errors import TransientTargetError

T = TypeVar("T")


@dataclass
class RetryPolicy:
    retries: int = 8  # attempts after the first
    base_seconds: float = 0.5
    max_seconds: float = 30.0  # cap of one delay (--retry-max-seconds)
    sleep: Callable[[float], None] = time.sleep
    on_retry: Callable[[int, float, Exception], None] | None = None

    def delay(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (1-based): uniform in [cap/2, cap], cap doubling."""
        cap = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        return cap / 2 + random.uniform(0, cap / 2)


class GaveUp(TransientTargetError):
    """Retries exhausted on a transient fault."""


def with_retries(fn: Callable[[], T], policy: RetryPolicy, what: str = "request") -> T:
    attempt = 0
    while True:
        try:
            return fn()
        except TransientTargetError as e:
            attempt += 1
            if attempt > policy.retries:
                raise GaveUp(f"{what}: gave up after {policy.retries} retries: {e}") from e
            d = policy.delay(attempt)
            if policy.on_retry is not None:
                policy.on_retry(attempt, d, e)
            policy.sleep(d)
