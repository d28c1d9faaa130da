"""Compute an iterator's items one stage ahead, in a thread, through a bounded queue.

Used for the pipeline's reader (read + validate while the previous batches are written) and for
sync's hashing stage. Errors in the thread are raised in the consumer; when the consumer leaves
early (an error downstream, an interrupt), the thread stops at the next item and closes the
iterator, so a source is never left half-read by a thread nobody waits for.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


def run_ahead(items: Iterator[T], depth: int, name: str) -> Iterator[T]:
    """``items``, produced in a thread named ``name`` at most ``depth`` items ahead of the consumer."""
    q: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    done = object()
    abandoned = threading.Event()

    def put(x: object) -> bool:
        while not abandoned.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for it in items:
                if not put((it,)):  # wrapped: an item is never taken for the end or an error
                    return
            put(done)
        except BaseException as e:  # handed to the consumer, raised there
            put(e)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    t = threading.Thread(target=work, name=name, daemon=True)
    t.start()
    try:
        while True:
            x = q.get()
            if x is done:
                return
            if isinstance(x, BaseException):
                raise x
            yield x[0]  # type: ignore[index]
    finally:
        abandoned.set()
        t.join(timeout=5)
