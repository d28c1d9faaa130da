"""Transient target faults are retried with growing, jittered delays; permanent ones fail at once.

The faults come from a real embedded target (``EdgeTarget``) that raises Cortex's typed
errors for chosen batches; the classification of real gRPC / httpx exceptions into those
types is checked against a real in-process gRPC server and real sockets below (HTTP status
codes and the NOT_FOUND / unreachable cases are in test_server_target.py).
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest

from cortex.api import migrate, verify
from cortex.errors import AuthError, BatchTooLargeError, TargetError, TransientTargetError
from cortex.pipeline import PipelineOptions, run
from cortex.retry import GaveUp, RetryPolicy, with_retries
from cortex.sources import open_source
from cortex.state import StateStore
from cortex.targets.edge import EdgeTarget
from cortex.targets.server import translate

N, DIM, BATCH = 3_000, 16, 100


@pytest.fixture
def source(tmp_path: Path) -> Path:
    vecs = np.random.default_rng(3).normal(size=(N, DIM)).astype(np.float32)
    p = tmp_path / "src.jsonl"
    p.write_bytes(b"".join(orjson.dumps({"id": i, "vector": vecs[i], "payload": {"i": i}},
                                        option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for i in range(N)))
    return p


class FaultyEdge(EdgeTarget):
    """The real embedded target, but ``fault(ids)`` may raise instead of writing; every call is logged."""

    def __init__(self, path: Path, fault=None) -> None:
        super().__init__(path)
        self.fault = fault
        self.calls: list[tuple[int, int]] = []  # (first id, size) per upsert attempt
        self._lock = threading.Lock()

    def upsert(self, name, ids, vectors, payloads) -> None:
        with self._lock:
            self.calls.append((int(ids[0]), len(ids)))
        if self.fault is not None:
            self.fault(ids)
        super().upsert(name, ids, vectors, payloads)

    def attempts(self, first_id: int) -> int:
        return sum(1 for f, _ in self.calls if f == first_id)


def _exact(target, source: Path) -> None:
    rep = verify("c", source=str(source), target=target, full=True)
    assert rep.ok and rep.actual_count == N, rep.problems[:5]


# -- the policy ------------------------------------------------------------------------------
def test_delays_grow_exponentially_with_jitter_up_to_the_cap():
    p = RetryPolicy(base_seconds=0.5, max_seconds=4.0)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (9, 4.0)]:
        ds = [p.delay(attempt) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in ds)
        assert len(set(ds)) > 150  # jittered, not a fixed schedule


def test_transient_errors_are_retried_with_growing_delays_then_succeed():
    slept: list[float] = []
    seen: list[int] = []
    policy = RetryPolicy(retries=5, base_seconds=0.1, max_seconds=10, sleep=slept.append,
                         on_retry=lambda a, d, e: seen.append(a))
    outcomes = iter([TransientTargetError("UNAVAILABLE")] * 4 + ["ok"])

    def call() -> str:
        o = next(outcomes)
        if isinstance(o, Exception):
            raise o
        return o

    assert with_retries(call, policy) == "ok"
    assert seen == [1, 2, 3, 4] and len(slept) == 4
    assert slept == sorted(slept) and slept[-1] > 2 * slept[0]  # each wait at least the one before
    assert 0.05 <= slept[0] <= 0.1 and 0.4 <= slept[3] <= 0.8


def test_permanent_errors_are_not_retried_and_give_up_keeps_the_cause():
    slept: list[float] = []
    calls = []

    def bad() -> None:
        calls.append(1)
        raise TargetError("HTTP 400: wrong vector dimension")

    with pytest.raises(TargetError, match="wrong vector dimension"):
        with_retries(bad, RetryPolicy(sleep=slept.append))
    assert len(calls) == 1 and slept == []

    def down() -> None:
        raise TransientTargetError("UNAVAILABLE: connection reset")

    with pytest.raises(GaveUp, match="gave up after 3 retries: UNAVAILABLE") as ei:
        with_retries(down, RetryPolicy(retries=3, sleep=slept.append))
    assert len(slept) == 3 and isinstance(ei.value.__cause__, TransientTargetError)


def test_an_interrupt_abandons_a_pending_retry_at_once():
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(TransientTargetError) as ei:
        with_retries(lambda: (_ for _ in ()).throw(TransientTargetError("busy")),
                     RetryPolicy(retries=8, base_seconds=3_600, max_seconds=3_600, stop=stop))
    assert not isinstance(ei.value, GaveUp)  # abandoned at once: the 8 x 3,600 s of backoff would hit the timeout


# -- through the pipeline and migrate ------------------------------------------------------------
def test_pipeline_retries_transient_upsert_faults_with_growing_delays(source, tmp_path):
    failures = {"left": 4}

    def fault(ids) -> None:
        if int(ids[0]) == 1_000 and failures["left"]:
            failures["left"] -= 1
            raise TransientTargetError("RESOURCE_EXHAUSTED: too many requests")

    tgt = FaultyEdge(tmp_path / "qd", fault)
    slept: list[float] = []
    opts = PipelineOptions(batch_size=BATCH, retry=RetryPolicy(retries=5, base_seconds=0.01, sleep=slept.append))
    with open_source(str(source)) as src:
        s = run(src, tgt, "c", opts)
    assert (s.status, s.read, s.written) == ("done", N, N)
    assert tgt.attempts(1_000) == 5 and len(slept) == 4 and slept == sorted(slept)
    _exact(tgt, source)
    tgt.close()


def test_permanent_fault_fails_at_once_and_the_rerun_resumes(source, tmp_path):
    def fault(ids) -> None:
        if int(ids[0]) == 1_500:
            raise TargetError("HTTP 400: Wrong input: Vector dimension error: expected dim: 16, got 17")

    qd, st = tmp_path / "qd", tmp_path / "state"
    tgt = FaultyEdge(qd, fault)
    with pytest.raises(TargetError, match="Vector dimension error.*re-run the same command to resume") as ei:
        migrate(str(source), "c", target=tgt, state_dir=str(st), batch_size=BATCH, checkpoint_seconds=0,
                build_index=False)
    assert type(ei.value) is TargetError
    assert tgt.attempts(1_500) == 1  # not retried
    tgt.close()
    (rec,) = StateStore(st).all()
    assert rec.status == "failed" and "Vector dimension error" in rec.error
    assert rec.cursor is not None and rec.counts["read"] == 1_500  # everything before the failed batch

    events: list[str] = []
    healthy = FaultyEdge(qd)
    s = migrate(str(source), "c", target=healthy, state_dir=str(st), batch_size=BATCH, on_event=events.append)
    assert f"resuming at {rec.counts['read']:,} / {N:,}" in events[0]
    assert (s.read, s.written, s.batches, s.resumed_from) == (N, N, N // BATCH, rec.counts["read"])
    assert min(f for f, _ in healthy.calls) == rec.counts["read"]  # only the rest was sent again
    _exact(healthy, source)
    healthy.close()


def test_giving_up_leaves_a_checkpoint_that_resumes(source, tmp_path):
    def fault(ids) -> None:
        if int(ids[0]) >= 2_000:
            raise TransientTargetError("DEADLINE_EXCEEDED: upsert timed out")

    qd, st = tmp_path / "qd", tmp_path / "state"
    tgt = FaultyEdge(qd, fault)
    events: list[str] = []
    with pytest.raises(GaveUp, match="gave up after 3 retries.*DEADLINE_EXCEEDED.*re-run the same command"):
        migrate(str(source), "c", target=tgt, state_dir=str(st), batch_size=BATCH, retries=3,
                retry_max_seconds=0.05, on_event=events.append)
    # Two writers: batches 2,000 and 2,100 may both be stuck, and either may give up first (the other is then
    # abandoned mid-backoff). The guarantee: the batch that gave up had 1 + 3 attempts, none had more, and
    # nothing past the stuck batches in flight was sent.
    stuck = {f: tgt.attempts(f) for f, _ in tgt.calls if f >= 2_000}
    assert set(stuck) <= {2_000, 2_100} and 2_000 in stuck, stuck
    assert max(stuck.values()) == 4 and all(1 <= n <= 4 for n in stuck.values()), stuck
    delays = [float(e.split(" in ")[1].split("s:")[0]) for e in events if e.startswith("retry ")]
    assert len(delays) >= 3 and all(d <= 0.05 for d in delays)
    tgt.close()
    (rec,) = StateStore(st).all()
    assert rec.status == "failed" and rec.counts["read"] == 2_000  # everything before the stuck batch

    healthy = FaultyEdge(qd)
    s = migrate(str(source), "c", target=healthy, state_dir=str(st), batch_size=BATCH)
    assert (s.status, s.read, s.written, s.resumed_from) == ("done", N, N, 2_000)
    _exact(healthy, source)
    healthy.close()


def test_a_batch_too_large_for_the_server_is_split_not_dropped(source, tmp_path):
    def fault(ids) -> None:
        if len(ids) > 30:
            raise BatchTooLargeError("RESOURCE_EXHAUSTED: Received message larger than max (400000 vs. 262144)")

    tgt = FaultyEdge(tmp_path / "qd", fault)
    s = migrate(str(source), "c", target=tgt, state_dir=str(tmp_path / "state"), batch_size=BATCH)
    assert (s.read, s.written, s.batches) == (N, N, N // BATCH)
    assert sorted({n for _, n in tgt.calls}) == [25, 50, 100]  # 100 -> 2 x 50 -> 4 x 25
    _exact(tgt, source)
    tgt.close()


def test_an_unexpected_target_exception_is_a_one_line_target_error(source, tmp_path):
    def fault(ids) -> None:
        raise RuntimeError("engine panicked")

    tgt = FaultyEdge(tmp_path / "qd", fault)
    with pytest.raises(TargetError, match="writing 100 points into 'c' .* failed: RuntimeError: engine panicked"):
        migrate(str(source), "c", target=tgt, state_dir=str(tmp_path / "state"), batch_size=BATCH)
    assert len(tgt.calls) <= 2  # not retried (at most the two parallel writers' first batches)
    tgt.close()


# -- real gRPC / httpx exceptions are classified --------------------------------------------------
class _Abort(grpc.GenericRpcHandler):
    """Any method ``/t/<CODE>`` aborts with that status code; ``/t/SLOW`` answers after a second."""

    def service(self, details):
        name = details.method.rsplit("/", 1)[1]

        def handle(request: bytes, context) -> bytes:
            if name == "SLOW":
                time.sleep(1)
                return b""
            context.abort(getattr(grpc.StatusCode, name), f"server says {name.lower()}")

        return grpc.unary_unary_rpc_method_handler(handle)


@pytest.fixture(scope="module")
def grpc_server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((_Abort(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def _rpc_error(addr: str, method: str, payload: bytes = b"x", timeout: float = 5, **options) -> grpc.RpcError:
    with grpc.insecure_channel(addr, options=list(options.items())) as ch:
        try:
            ch.unary_unary(f"/t/{method}")(payload, timeout=timeout)
        except grpc.RpcError as e:
            return e
    raise AssertionError("no error")


@pytest.mark.parametrize(("code", "kind"), [
    ("UNAVAILABLE", TransientTargetError),
    ("RESOURCE_EXHAUSTED", TransientTargetError),
    ("DEADLINE_EXCEEDED", TransientTargetError),
    ("UNAUTHENTICATED", AuthError),
    ("PERMISSION_DENIED", AuthError),
    ("INVALID_ARGUMENT", TargetError),
    ("FAILED_PRECONDITION", TargetError),
])
def test_grpc_status_codes_are_classified(grpc_server, code, kind):
    e = translate(_rpc_error(grpc_server, code), "upsert")
    assert type(e) is kind
    if kind is TargetError:  # permanent: the server's message is kept for the user
        assert f"server says {code.lower()}" in str(e)


def test_real_grpc_timeout_and_oversized_message(grpc_server):
    timeout = _rpc_error(grpc_server, "SLOW", timeout=0.1)
    assert timeout.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert type(translate(timeout, "upsert")) is TransientTargetError
    big = _rpc_error(grpc_server, "SLOW", payload=b"x" * 4096, **{"grpc.max_send_message_length": 1024})
    assert big.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert type(translate(big, "upsert")) is BatchTooLargeError


def test_real_connection_refused_and_read_timeout_are_transient():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(httpx.ConnectError) as refused:
        httpx.get(f"http://127.0.0.1:{port}/collections", timeout=2)
    assert type(translate(refused.value, "list")) is TransientTargetError
    with socket.socket() as listening:  # accepts the connection, never answers
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        with pytest.raises(httpx.ReadTimeout) as slow:
            httpx.get(f"http://127.0.0.1:{listening.getsockname()[1]}/", timeout=0.2)
    assert type(translate(slow.value, "list")) is TransientTargetError


def test_unreachable_server_fails_fast_with_one_line(cli, source):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = cli("qdrant", "migrate", "-s", source, "-t", "c", "--url", f"http://127.0.0.1:{port}",
              "--grpc-port", str(port))
    assert res.exit_code == 3
    assert "retry" not in res.stderr  # no retries with backoff against a server that is not there
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot reach Qdrant at http://127.0.0.1:{port}")
