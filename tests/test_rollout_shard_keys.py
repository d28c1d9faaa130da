"""``--shard-key-field`` on a server: custom sharding, one shard key per unit, upserts routed to it.

qdrant-client's local mode has no sharding and no Qdrant server binary is available here, so this runs
the real ``rollout`` (qdrant-client over gRPC, Cortex's own upsert encoder) against a small gRPC
endpoint in this process that speaks Qdrant's protocol, keeps points in memory, and records the
requests that matter: collection creation (sharding method), shard keys, field indexes, and the
shard key selector of every upsert.
"""

from __future__ import annotations

import json
import socket
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from qdrant_client import grpc as g

from cortex import api
from cortex.errors import CortexError

WS = [f"ws-{i}" for i in range(5)]
DIM = 8


class RecordingQdrant:
    """A Qdrant gRPC endpoint on a free loopback port: points in memory, requests recorded."""

    def __init__(self) -> None:
        self.created: list[Any] = []
        self.shard_keys: list[Any] = []
        self.field_indexes: list[Any] = []
        self.upserts: list[tuple[str | None, set[str]]] = []  # (shard key, workspaces in the batch)
        self.points: dict[Any, Any] = {}
        self.config: dict[str, Any] = {}
        self.schema: dict[str, Any] = {}
        lock = threading.Lock()
        me = self

        def key_of(pid: Any) -> Any:
            return pid.num if pid.HasField("num") else pid.uuid

        def matches(point: Any, flt: Any) -> bool:  # the filters Cortex sends here: must [keyword match]
            for c in flt.must:
                f = c.field
                v = point.payload.get(f.key)
                if v is None or v.string_value != f.match.keyword:
                    return False
            return True

        class Root(g.QdrantServicer):
            def HealthCheck(self, request, context):  # noqa: N802 - gRPC method names
                return g.HealthCheckReply(title="recording endpoint", version="1.16.0")

        class Collections(g.CollectionsServicer):
            def Create(self, request, context):  # noqa: N802
                me.created.append(request)
                cfg = g.CollectionConfig(
                    params=g.CollectionParams(vectors_config=request.vectors_config, shard_number=1,
                                              sharding_method=request.sharding_method),
                    hnsw_config=g.HnswConfigDiff(m=16, ef_construct=100, full_scan_threshold=10000),
                    optimizer_config=g.OptimizersConfigDiff(deleted_threshold=0.2, vacuum_min_vector_number=1000,
                                                            default_segment_number=0, indexing_threshold=10000,
                                                            flush_interval_sec=5),
                    wal_config=g.WalConfigDiff(wal_capacity_mb=32, wal_segments_ahead=0, wal_retain_closed=1))
                cfg.optimizer_config.MergeFrom(request.optimizers_config)
                me.config[request.collection_name] = cfg
                return g.CollectionOperationResponse(result=True, time=0.0)

            def Get(self, request, context):  # noqa: N802
                if request.collection_name not in me.config:
                    context.abort(grpc.StatusCode.NOT_FOUND, f"Collection `{request.collection_name}` doesn't exist!")
                return g.GetCollectionInfoResponse(result=g.CollectionInfo(
                    status=g.CollectionStatus.Green, optimizer_status=g.OptimizerStatus(ok=True), segments_count=1,
                    config=me.config[request.collection_name], points_count=len(me.points),
                    payload_schema=me.schema), time=0.0)

            def CollectionExists(self, request, context):  # noqa: N802
                exists = request.collection_name in me.config
                return g.CollectionExistsResponse(result=g.CollectionExists(exists=exists))

            def List(self, request, context):  # noqa: N802
                return g.ListCollectionsResponse(collections=[g.CollectionDescription(name=n) for n in me.config])

            def Update(self, request, context):  # noqa: N802
                return g.CollectionOperationResponse(result=True, time=0.0)

            def CreateShardKey(self, request, context):  # noqa: N802
                me.shard_keys.append(request.request.shard_key.keyword)
                return g.CreateShardKeyResponse(result=True, time=0.0)

            def ListShardKeys(self, request, context):  # noqa: N802
                return g.ListShardKeysResponse(shard_keys=[g.ShardKeyDescription(key=g.ShardKey(keyword=k))
                                                           for k in me.shard_keys], time=0.0)

        class Points(g.PointsServicer):
            def Upsert(self, request, context):  # noqa: N802
                keys = [k.keyword for k in request.shard_key_selector.shard_keys]
                with lock:
                    me.upserts.append((keys[0] if keys else None,
                                       {p.payload["workspace_id"].string_value for p in request.points}))
                    for p in request.points:  # Cosine collections keep unit-length vectors, as Qdrant does
                        v = np.asarray(p.vectors.vector.dense.data, dtype=np.float32)
                        p.vectors.vector.dense.data[:] = (v / max(float(np.linalg.norm(v)), 1e-12)).tolist()
                        me.points[key_of(p.id)] = p
                return g.PointsOperationResponse(result=g.UpdateResult(status=g.UpdateStatus.Completed), time=0.0)

            def CreateFieldIndex(self, request, context):  # noqa: N802
                me.field_indexes.append(request)
                me.schema[request.field_name] = g.PayloadSchemaInfo(data_type=g.PayloadSchemaType.Keyword,
                                                                    params=request.field_index_params)
                return g.PointsOperationResponse(result=g.UpdateResult(status=g.UpdateStatus.Completed), time=0.0)

            def Count(self, request, context):  # noqa: N802
                n = sum(1 for p in me.points.values() if matches(p, request.filter))
                return g.CountResponse(result=g.CountResult(count=n), time=0.0)

            def Get(self, request, context):  # noqa: N802
                out = []
                for pid in request.ids:
                    p = me.points.get(key_of(pid))
                    if p is not None:
                        out.append(g.RetrievedPoint(id=p.id, payload=p.payload, vectors=g.VectorsOutput(
                            vector=g.VectorOutput(dense=g.DenseVector(data=p.vectors.vector.dense.data)))))
                return g.GetResponse(result=out, time=0.0)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        g.add_QdrantServicer_to_server(Root(), self.server)
        g.add_CollectionsServicer_to_server(Collections(), self.server)
        g.add_PointsServicer_to_server(Points(), self.server)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def endpoint():
    ep = RecordingQdrant()
    yield ep
    ep.server.stop(grace=None)


def _jsonl(path: Path) -> Path:
    rng = np.random.default_rng(5)
    lines = [json.dumps({"id": i, "vector": rng.standard_normal(DIM).tolist(),
                         "payload": {"workspace_id": WS[i % 5], "n": i}}) for i in range(100)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_units_go_to_their_own_shard_keys(endpoint: RecordingQdrant, tmp_path: Path) -> None:
    src = str(_jsonl(tmp_path / "e.jsonl"))
    state = str(tmp_path / ".cortex")
    target = {"url": endpoint.url, "grpc_port": endpoint.port}
    plan = api.rollout_plan(src, by="workspace_id", collection="chunks", shard_key_field="workspace_id",
                            state_dir=state, **target)
    assert [u.shard_key for u in plan.units] == WS
    res = api.rollout_run(units=["ws-1", "ws-3"], parallel=2, batch_size=7, state_dir=state)
    assert res.ok, res.to_dict()

    (create,) = endpoint.created
    assert create.sharding_method == g.ShardingMethod.Custom
    assert sorted(endpoint.shard_keys) == ["ws-1", "ws-3"]
    (idx,) = endpoint.field_indexes
    assert idx.field_name == "workspace_id" and idx.field_index_params.keyword_index_params.is_tenant
    assert endpoint.upserts and all(key is not None and ws == {key} for key, ws in endpoint.upserts)
    assert {key for key, _ in endpoint.upserts} == {"ws-1", "ws-3"}
    assert len(endpoint.points) == 40

    res = api.rollout_run(units=["ws-0"], state_dir=state)  # a later unit: its key is created then
    assert res.ok and endpoint.shard_keys[-1] == "ws-0" and len(endpoint.created) == 1


def test_shard_keys_need_a_server(tmp_path: Path) -> None:
    src = str(_jsonl(tmp_path / "e.jsonl"))
    api.rollout_plan(src, by="workspace_id", shard_key_field="workspace_id", state_dir=str(tmp_path / "s"),
                     path=str(tmp_path / "qs"))
    with pytest.raises(CortexError, match="needs a Qdrant server"):
        api.rollout_run(state_dir=str(tmp_path / "s"))
    with pytest.raises(CortexError, match="one shard key"):
        api.rollout_plan(src, by="workspace_id", shard_key_field="n", state_dir=str(tmp_path / "s2"))


def test_sharded_rollout_on_the_test_server(qdrant_server, tmp_path: Path) -> None:
    """The whole cycle against the loopback Qdrant gRPC server (custom sharding, one Edge shard per key)."""
    from cortex.router import OldSystem, Router
    from cortex.where import equals

    src = str(_jsonl(tmp_path / "e.jsonl"))
    state = str(tmp_path / ".cortex")
    kw = qdrant_server.api_kwargs
    api.rollout_plan(src, by="workspace_id", collection="chunks", shard_key_field="workspace_id", state_dir=state,
                     **kw)
    res = api.rollout_run(parallel=2, state_dir=state, batch_size=9)
    assert res.ok and sum(u.written for u in res.units) == 100, res.to_dict()
    client = qdrant_server.client()
    keys = {k.key for k in client.list_shard_keys("chunks").shard_keys}
    assert keys == set(WS)
    api.rollout_promote("ws-2", state_dir=state)
    tgt = qdrant_server.target()
    router = Router(state, old=OldSystem(src), new=(tgt, "chunks"))
    q = np.ones(DIM, dtype=np.float32)
    live, old = router.search(q, k=4, workspace="ws-2"), router.search(q, k=4, workspace="ws-3")
    assert (live.side, old.side) == ("qdrant", "old")
    assert {int(i) % 5 for i, _ in live.hits} == {2} and {int(i) % 5 for i, _ in old.hits} == {3}
    out = api.rollout_revert("ws-2", delete=True, state_dir=state, target=tgt)
    assert out["deleted_points"] == 20 and tgt.count("chunks", filter=equals("workspace_id", "ws-2")) == 0
    assert tgt.count("chunks") == 80
    assert router.search(q, k=4, workspace="ws-2").side == "old"
    router.old.close()
    tgt.close()
    client.close()
