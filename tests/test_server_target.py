"""The server target: its gRPC request encoder, the CLI against qdrant-client local mode and against the
loopback Qdrant gRPC server on Qdrant Edge (tests/qdrant_grpc_server), and real gRPC traffic into a
discarding endpoint (bench/bench_server_upload.py --serve) and into that server.

The discarding endpoint counts points and keeps collection configs but stores no points, so it checks
what reaches the wire (counts, auth headers, message limits, collection calls); the Edge server stores
them, so the same tests also read back what was stored (counts of distinct ids, verify --full).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client import grpc as g
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.conversions.conversion import RestToGrpc
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from cortex.api import migrate
from cortex.errors import AuthError, BatchTooLargeError, TargetError, TransientTargetError
from cortex.ids import CORTEX_NAMESPACE
from cortex.targets.grpc_upload import encode_upsert
from cortex.targets.server import DEFAULT_INDEXING_THRESHOLD_KB, ServerTarget, translate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_server_upload import NullEndpoint, free_port  # noqa: E402
from grpc_server_fixture import QdrantGrpcServer  # noqa: E402

# -- the request encoder ---------------------------------------------------------------------------
PAYLOADS = [
    {"text": "plain", "n": 7, "f": 0.1, "ok": True, "none": None},
    {},
    {"nested": {"a": [1, 2.5, "x", None, False, {"deep": {"er": []}}], "b": {}}, "empty": "", "list": []},
    {"unicode": "日本語 ✓ ü 🚀", "ключ": "значение", "": "empty key", "big": 2**63 - 1, "small": -(2**63)},
    {"neg": -1, "zero": 0, "float_int": 3.0, "huge": 1e308, "tiny": 5e-324, "negzero": -0.0},
]
IDS = [0, 1, 127, 128, 16_383, 16_384, 2**32, 2**63, 2**64 - 1, np.uint64(42),
       "7c9e6679-7425-40de-944b-e07fc1f90ae7", str(uuid.uuid5(CORTEX_NAMESPACE, "doc-1"))]


def reference(name: str, ids: list, vecs: np.ndarray, payloads: list | None) -> g.UpsertPoints:
    """What qdrant-client itself sends for ``upsert(points=[PointStruct ...], wait=True)`` over gRPC."""
    pts = [RestToGrpc.convert_point_struct(models.PointStruct(
        id=int(i) if isinstance(i, np.integer) else i, vector=v.tolist(),
        payload=payloads[k] if payloads is not None else None)) for k, (i, v) in enumerate(zip(ids, vecs, strict=True))]
    return g.UpsertPoints(collection_name=name, wait=True, points=pts)


def floats(m: g.UpsertPoints) -> bytes:
    return b"".join(np.array(p.vectors.vector.dense.data, dtype="<f4").tobytes() for p in m.points)


def test_encoded_request_equals_qdrant_clients_own() -> None:
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((len(IDS), 5)).astype(np.float32)
    vecs[0] = [-0.0, np.finfo(np.float32).max, np.finfo(np.float32).smallest_subnormal, -1e-38, 1.0]
    payloads = [PAYLOADS[i % len(PAYLOADS)] for i in range(len(IDS))]
    for pls in (payloads, None, [{}] * len(IDS)):
        got = g.UpsertPoints.FromString(encode_upsert("colección-ü", IDS, vecs, pls))
        want = reference("colección-ü", IDS, vecs, pls)
        assert got == want
        assert floats(got) == vecs.tobytes()  # bit-exact, -0.0 and subnormals included
    assert all(not p.payload for p in g.UpsertPoints.FromString(encode_upsert("c", IDS, vecs, None)).points)
    assert not g.UpsertPoints.FromString(encode_upsert("c", IDS, vecs, None, wait=False)).wait


def test_every_dimension_from_1_to_1536() -> None:
    rng = np.random.default_rng(2)
    for dim in range(1, 1537):
        vecs = rng.standard_normal((2, dim)).astype(np.float32)
        ids = [dim, str(uuid.UUID(int=dim))]
        pls = [PAYLOADS[dim % len(PAYLOADS)], {}]
        got = g.UpsertPoints.FromString(encode_upsert("c", ids, vecs, pls))
        assert got == reference("c", ids, vecs, pls), dim
        assert floats(got) == vecs.tobytes(), dim


def test_float64_and_non_contiguous_vectors_are_sent_as_float32() -> None:
    v64 = np.random.default_rng(3).standard_normal((4, 6))
    got = g.UpsertPoints.FromString(encode_upsert("c", [1, 2, 3, 4], v64[:, ::2], None))
    assert floats(got) == np.ascontiguousarray(v64[:, ::2], dtype=np.float32).tobytes()


@pytest.mark.parametrize("bad", [-1, 2**64, 1.5, True, None])
def test_invalid_ids_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="point id"):
        encode_upsert("c", [bad], np.zeros((1, 3), np.float32), None)


# -- qdrant-client local mode through the CLI ------------------------------------------------------
def write_jsonl(path: Path, n: int, dim: int) -> list[dict]:
    rng = np.random.default_rng(4)
    recs = [{"id": i if i % 3 else f"doc-{i}", "vector": rng.standard_normal(dim).astype(np.float32).tolist(),
             "payload": {"title": f"t{i}", "n": i, "tags": ["a", "ü"], "meta": {"score": i / 7, "ok": i % 2 == 0}}}
            for i in range(n)]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    return recs


# ``qdrant_endpoint`` (tests/grpc_server_fixture.py) runs a test twice: against qdrant-client's local mode and
# against the loopback gRPC server on Qdrant Edge (tests/qdrant_grpc_server), which stores what the raw gRPC
# upload sends and reads it back over the wire.
def test_migrate_jsonl_verify_status_optimize(cli, tmp_path: Path, qdrant_endpoint) -> None:
    src = tmp_path / "export.jsonl"
    recs = write_jsonl(src, 300, 16)
    url = qdrant_endpoint.cortex_args
    # dot, not cosine: qdrant-client 1.20's local mode reloads persisted cosine vectors un-normalized
    res = cli("qdrant", "migrate", "--source", src, "--target", "c", *url, "--batch-size", 64, "--distance", "dot")
    assert res.exit_code == 0, res.output
    res = cli("qdrant", "verify", "--collection", "c", "--source", src, "--full", "--tolerance", 0, *url)
    assert res.exit_code == 0, res.output  # bit-exact
    res = cli("qdrant", "status", "--json", *url)
    assert res.exit_code == 0, res.output
    [info] = orjson.loads(res.stdout)
    assert (info["name"], info["points"], info["dim"], info["distance"]) == ("c", 300, 16, "dot")
    res = cli("qdrant", "optimize", "c", "--wait", "--json", *url)
    assert res.exit_code == 0, res.output
    assert orjson.loads(res.stdout)["status"] == "green"

    t = qdrant_endpoint.target()
    try:
        uid = str(uuid.uuid5(CORTEX_NAMESPACE, "doc-3"))
        got = t.retrieve("c", [1, uid])
        assert got[1].payload == recs[1]["payload"]
        assert got[uid].payload == {**recs[3]["payload"], "source_id": "doc-3"}
        assert got[1].vector.tobytes() == np.asarray(recs[1]["vector"], np.float32).tobytes()
    finally:
        t.close()


def test_migrate_npy_matrix_exact_vectors(cli, tmp_path: Path, qdrant_endpoint) -> None:
    vecs = np.random.default_rng(5).standard_normal((500, 8)).astype(np.float32)
    np.save(tmp_path / "m.npy", vecs)
    url = qdrant_endpoint.cortex_args
    if qdrant_endpoint.kind == "local":
        res = cli("qdrant", "migrate", "--source", tmp_path / "m.npy", "--target", "m", "--distance", "dot", *url,
                  "--no-prefer-grpc")
        assert res.exit_code == 0, res.output
    else:  # no REST port there: qdrant-client's own upsert over gRPC instead of Cortex's pre-serialized requests
        with qdrant_endpoint.target(raw_grpc_upload=False) as t:
            s = migrate(str(tmp_path / "m.npy"), "m", target=t, distance="dot", state_dir=str(tmp_path / ".cortex"))
        assert (s.status, s.written) == ("done", 500)
    res = cli("qdrant", "verify", "-c", "m", "--source", tmp_path / "m.npy", "--full", "--tolerance", 0, *url)
    assert res.exit_code == 0, res.output
    t = qdrant_endpoint.target()
    try:
        assert t.count("m") == 500
        got = t.retrieve("m", [0, 499])
        assert got[0].vector.tobytes() == vecs[0].tobytes() and got[499].vector.tobytes() == vecs[499].tobytes()
    finally:
        t.close()


def test_conflicting_dimension_or_distance_exits_4(cli, tmp_path: Path, qdrant_endpoint) -> None:
    url = qdrant_endpoint.cortex_args
    write_jsonl(tmp_path / "a.jsonl", 20, 16)  # a cosine collection
    assert cli("qdrant", "migrate", "-s", tmp_path / "a.jsonl", "-t", "c", *url).exit_code == 0
    np.save(tmp_path / "d8.npy", np.ones((5, 8), np.float32))
    res = cli("qdrant", "migrate", "-s", tmp_path / "d8.npy", "-t", "c", *url)
    assert res.exit_code == 4, res.output
    assert "holds 16-dim vectors but the source has 8" in res.stderr and "Traceback" not in res.output
    np.save(tmp_path / "d16.npy", np.ones((5, 16), np.float32))
    res = cli("qdrant", "migrate", "-s", tmp_path / "d16.npy", "-t", "c", "--distance", "dot", *url)
    assert res.exit_code == 4, res.output
    assert "uses cosine distance" in res.stderr


@pytest.mark.parametrize("grpc_flag", ["--prefer-grpc", "--no-prefer-grpc"])
def test_unreachable_url_exits_3_with_one_line(cli, tmp_path: Path, grpc_flag: str) -> None:
    port = free_port()  # nothing listens there
    write_jsonl(tmp_path / "a.jsonl", 3, 4)
    res = cli("qdrant", "migrate", "-s", tmp_path / "a.jsonl", "-t", "c", "--url", f"http://127.0.0.1:{port}",
              "--grpc-port", port, grpc_flag)
    assert res.exit_code == 3, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot reach Qdrant at http://127.0.0.1:"), res.stderr
    assert "Traceback" not in res.output


def test_translate_http_and_client_exceptions() -> None:
    def http(status: int) -> UnexpectedResponse:
        return UnexpectedResponse(status_code=status, reason_phrase="x", content=b'{"status":"bad"}',
                                  headers=httpx.Headers())

    assert type(translate(http(401), "w")) is AuthError
    assert type(translate(http(403), "w")) is AuthError
    assert type(translate(http(413), "w")) is BatchTooLargeError
    assert type(translate(http(429), "w")) is TransientTargetError
    assert type(translate(http(503), "w")) is TransientTargetError
    e = translate(http(400), "w")
    assert type(e) is TargetError and "HTTP 400" in str(e)
    assert type(translate(httpx.ConnectError("refused"), "w")) is TransientTargetError
    assert type(translate(ResponseHandlingException(httpx.ReadTimeout("slow")), "w")) is TransientTargetError
    assert type(translate(ResourceExhaustedResponse("slow down", 3), "w")) is TransientTargetError
    assert type(translate(RuntimeError("boom"), "w")) is TargetError
    assert translate(AuthError("kept"), "w").args == ("kept",)


# -- real gRPC into the discarding endpoint and into the Qdrant Edge gRPC server ---------------------
class EdgeEndpoint:
    """The loopback Qdrant server (which stores the points) with the NullEndpoint interface."""

    def __init__(self, server: QdrantGrpcServer, owned: bool) -> None:
        self.server, self.owned = server, owned
        self.url, self.port = server.url, server.port

    def count(self) -> int:
        c = self.server.client()
        try:
            return sum(c.count(x.name).count for x in c.get_collections().collections)
        finally:
            c.close()

    def __enter__(self) -> EdgeEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.server.stop()


@pytest.fixture(params=["null", "edge-grpc"])
def make_endpoint(request: pytest.FixtureRequest, tmp_path: Path):
    """``make_endpoint(api_key=, max_receive=)``: the discarding endpoint, or the real server (params)."""
    if request.param == "null":
        return lambda **kw: NullEndpoint(seconds=120, **kw)

    def edge(api_key: str | None = None, max_receive: int | None = None) -> EdgeEndpoint:
        if api_key is None and max_receive is None:  # the module's server, emptied
            shared = request.getfixturevalue("qdrant_server_module")
            shared.reset()
            return EdgeEndpoint(shared, owned=False)
        return EdgeEndpoint(QdrantGrpcServer(tmp_path / "edge-server", api_key=api_key,
                                             max_message_bytes=max_receive), owned=True)

    return edge


@pytest.fixture
def endpoint(make_endpoint):
    with make_endpoint() as ep:
        yield ep


def server_args(ep: NullEndpoint) -> list:
    return ["--url", ep.url, "--grpc-port", ep.port, "--prefer-grpc"]


def test_migrate_5k_points_over_grpc(cli, tmp_path: Path, endpoint: NullEndpoint) -> None:
    np.save(tmp_path / "v.npy", np.random.default_rng(6).standard_normal((5000, 64)).astype(np.float32))
    res = cli("qdrant", "migrate", "-s", tmp_path / "v.npy", "-t", "c", "--workers", 2, *server_args(endpoint))
    assert res.exit_code == 0, res.output
    assert endpoint.count() == 5000
    write_jsonl(tmp_path / "p.jsonl", 700, 64)
    res = cli("qdrant", "migrate", "-s", tmp_path / "p.jsonl", "-t", "c", *server_args(endpoint))
    assert res.exit_code == 0, res.output
    # the endpoint counts what arrives; a real store keeps ids once: 466 int ids of the JSONL replace npy rows,
    # its 234 "doc-i" ids become new UUIDs
    assert endpoint.count() == (5700 if isinstance(endpoint, NullEndpoint) else 5234)
    res = cli("qdrant", "status", "--json", *server_args(endpoint))
    assert res.exit_code == 0, res.output
    [info] = orjson.loads(res.stdout)
    assert info["optimizer"]["indexing_threshold"] == DEFAULT_INDEXING_THRESHOLD_KB  # re-enabled after the load


def test_deferred_indexing_is_restored_by_finish_load(endpoint: NullEndpoint) -> None:
    t = ServerTarget(endpoint.url, grpc_port=endpoint.port)
    try:
        t.create_collection("deferred", 8, "euclid", defer_indexing=True)
        info = t.collection_info("deferred")
        assert (info.dim, info.distance, info.optimizer["indexing_threshold"]) == (8, "euclid", 0)
        t.finish_load("deferred")
        assert t.collection_info("deferred").optimizer["indexing_threshold"] == DEFAULT_INDEXING_THRESHOLD_KB
        t.create_collection("eager", 8, "dot", defer_indexing=False)
        assert t.collection_info("eager").optimizer["indexing_threshold"] != 0
        assert t.collection_info("missing") is None
    finally:
        t.close()


def test_api_key_reaches_the_server_through_the_raw_upload_channel(cli, tmp_path: Path, make_endpoint) -> None:
    np.save(tmp_path / "v.npy", np.ones((1200, 16), np.float32))
    with make_endpoint(api_key="s3cret") as ep:
        res = cli("qdrant", "migrate", "-s", tmp_path / "v.npy", "-t", "c", "--api-key", "s3cret", *server_args(ep))
        assert res.exit_code == 0, res.output
        assert ep.count() == 1200
        res = cli("qdrant", "migrate", "-s", tmp_path / "v.npy", "-t", "d", "--api-key", "wrong", *server_args(ep))
        assert res.exit_code == 3, res.output
        assert "refused the API key" in res.stderr and "Traceback" not in res.output
        t = ServerTarget(ep.url, api_key="wrong", grpc_port=ep.port)
        with pytest.raises(AuthError):  # the upsert path itself, past ping
            t.upsert("c", [1], np.ones((1, 16), np.float32), None)
        t.close()


def test_oversized_batches_are_split(cli, tmp_path: Path, make_endpoint) -> None:
    np.save(tmp_path / "v.npy", np.ones((2000, 128), np.float32))  # a 500-point batch is ~270 kB
    with make_endpoint(max_receive=200_000) as ep:
        t = ServerTarget(ep.url, grpc_port=ep.port)
        t.create_collection("direct", 128, "cosine")
        with pytest.raises(BatchTooLargeError, match="larger than the server accepts"):
            t.upsert("direct", list(range(500)), np.ones((500, 128), np.float32), None)
        t.close()
        res = cli("qdrant", "migrate", "-s", tmp_path / "v.npy", "-t", "c", *server_args(ep))
        assert res.exit_code == 0, res.output
        assert ep.count() == 2000


def test_translate_real_grpc_errors(endpoint: NullEndpoint) -> None:
    def raised(fn) -> Exception:
        try:
            fn()
        except Exception as e:  # the real exception object the client raised
            return e
        raise AssertionError("no error")

    c = QdrantClient(url=endpoint.url, grpc_port=endpoint.port, prefer_grpc=True, check_compatibility=False)
    missing = raised(lambda: c.get_collection("missing"))
    assert isinstance(missing, grpc.RpcError) and missing.code() == grpc.StatusCode.NOT_FOUND
    e = translate(missing, "w")
    assert type(e) is TargetError and "NOT_FOUND" in str(e)
    c.close()
    closed = QdrantClient(url="http://127.0.0.1:1", grpc_port=free_port(), prefer_grpc=True, check_compatibility=False)
    unavailable = raised(closed.get_collections)
    assert isinstance(unavailable, grpc.RpcError) and type(translate(unavailable, "w")) is TransientTargetError
    closed.close()


def test_a_configs_indexing_threshold_survives_a_load_resumed_in_another_process(qdrant_server) -> None:
    """The load defers indexing (threshold 0); finishing it in a new ServerTarget (a resumed run's process)
    restores the config's threshold, kept in the collection's metadata, not Qdrant's default."""
    from cortex.collection_config import CollectionConfig

    cfg = CollectionConfig.model_validate({"name": "thr", "vectors": {"size": 4, "distance": "dot"},
                                           "optimizers": {"indexing_threshold": 12345}})
    with qdrant_server.target() as t:
        t.create_collection("thr", 4, "dot", defer_indexing=True, config=cfg)
        assert t.collection_info("thr").optimizer.get("indexing_threshold") == 0
    with qdrant_server.target() as t:  # another process's target: nothing in memory
        t.finish_load("thr")
    client = qdrant_server.client()
    try:
        assert client.get_collection("thr").config.optimizer_config.indexing_threshold == 12345
    finally:
        client.close()
