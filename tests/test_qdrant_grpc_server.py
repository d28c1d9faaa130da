"""The loopback Qdrant gRPC server (tests/qdrant_grpc_server) through qdrant-client's own methods.

One server per module (``qdrant_server_module``); each test uses its own collection names.
"""

from __future__ import annotations

import uuid

import grpc
import numpy as np
import pytest
from grpc_server_fixture import QdrantGrpcServer
from qdrant_client import grpc as g
from qdrant_client import models


@pytest.fixture(scope="module")
def client(qdrant_server_module: QdrantGrpcServer):
    c = qdrant_server_module.client()
    yield c
    c.close()


def code_of(fn) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code()


def make(client, name: str, dim: int = 4, distance=models.Distance.COSINE, **kw) -> None:
    client.create_collection(name, vectors_config=models.VectorParams(size=dim, distance=distance), **kw)


def points(n: int, dim: int = 4, seed: int = 0, start: int = 0) -> list[models.PointStruct]:
    rng = np.random.default_rng(seed)
    return [models.PointStruct(id=start + i, vector=rng.standard_normal(dim).astype(np.float32).tolist(),
                               payload={"n": start + i, "group": f"g{(start + i) % 3}", "tags": ["a", str(i)]})
            for i in range(n)]


def test_collection_lifecycle_and_validated_info(client) -> None:
    make(client, "life", 8, models.Distance.DOT,
         hnsw_config=models.HnswConfigDiff(m=32), optimizers_config=models.OptimizersConfigDiff(indexing_threshold=0),
         quantization_config=models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
             type=models.ScalarType.INT8, always_ram=True)))
    info = client.get_collection("life")  # qdrant-client validates it into its pydantic CollectionInfo
    assert info.status == models.CollectionStatus.GREEN and info.points_count == 0
    assert (info.config.params.vectors.size, info.config.params.vectors.distance) == (8, models.Distance.DOT)
    assert (info.config.hnsw_config.m, info.config.hnsw_config.ef_construct) == (32, 100)
    assert info.config.optimizer_config.indexing_threshold == 0
    assert info.config.quantization_config.scalar.type == models.ScalarType.INT8
    assert client.collection_exists("life") and not client.collection_exists("nothing")
    assert "life" in [c.name for c in client.get_collections().collections]

    client.update_collection("life", optimizers_config=models.OptimizersConfigDiff(indexing_threshold=5000),
                             hnsw_config=models.HnswConfigDiff(ef_construct=64))
    info = client.get_collection("life")
    assert info.config.optimizer_config.indexing_threshold == 5000 and info.config.hnsw_config.ef_construct == 64
    assert code_of(lambda: make(client, "life")) == grpc.StatusCode.ALREADY_EXISTS
    assert client.delete_collection("life") is True
    assert client.delete_collection("life") is False
    assert not client.collection_exists("life")
    assert code_of(lambda: client.get_collection("life")) == grpc.StatusCode.NOT_FOUND


def test_named_sparse_and_multi_vectors_round_trip(client) -> None:
    client.create_collection(
        "multi", vectors_config={"": models.VectorParams(size=3, distance=models.Distance.EUCLID),
                                 "img": models.VectorParams(size=2, distance=models.Distance.DOT),
                                 "colbert": models.VectorParams(size=2, distance=models.Distance.DOT,
                                                                multivector_config=models.MultiVectorConfig(
                                                                    comparator=models.MultiVectorComparator.MAX_SIM))},
        sparse_vectors_config={"text": models.SparseVectorParams(modifier=models.Modifier.IDF)})
    vec = {"": [1.0, 2.0, 3.0], "img": [0.5, -0.25], "colbert": [[1.0, 0.0], [0.0, 1.0]],
           "text": models.SparseVector(indices=[3, 70], values=[0.5, 1.5])}
    client.upsert("multi", points=[models.PointStruct(id=1, vector=vec, payload={"k": "v"}),
                                   models.PointStruct(id=2, vector={"": [0.0, 0.0, 1.0]})])
    [p] = client.retrieve("multi", [1], with_vectors=True)
    assert p.vector[""] == [1.0, 2.0, 3.0] and p.vector["img"] == [0.5, -0.25]
    assert p.vector["colbert"] == [[1.0, 0.0], [0.0, 1.0]]
    assert (p.vector["text"].indices, p.vector["text"].values) == ([3, 70], [0.5, 1.5])
    info = client.get_collection("multi")
    assert set(info.config.params.vectors) == {"", "img", "colbert"}
    assert info.config.params.sparse_vectors["text"].modifier == models.Modifier.IDF
    hits = client.query_points("multi", query=models.SparseVector(indices=[70], values=[1.0]), using="text").points
    assert [h.id for h in hits] == [1]
    hits = client.query_points("multi", query=[0.0, 0.0, 1.0], limit=2).points  # euclid: nearest first
    assert [h.id for h in hits] == [2, 1]
    fused = client.query_points("multi", prefetch=[models.Prefetch(query=[1.0, 2.0, 3.0], limit=2),
                                                    models.Prefetch(query=[0.5, -0.25], using="img", limit=2)],
                                query=models.FusionQuery(fusion=models.Fusion.RRF), limit=2).points
    assert fused[0].id == 1


def test_upsert_scroll_get_count_delete(client) -> None:
    make(client, "pts")
    client.upsert("pts", points=points(50))
    uid = str(uuid.uuid4())
    client.upsert("pts", points=[models.PointStruct(id=uid, vector=[0.0, 0.0, 0.0, 2.0], payload={"n": -1})])
    assert client.count("pts").count == 51
    seen, offset = [], None
    while True:
        recs, offset = client.scroll("pts", limit=7, offset=offset, with_vectors=True, with_payload=True)
        seen += recs
        if offset is None:
            break
    assert [r.id for r in seen] == list(range(50)) + [uid]  # ints in order, then the UUID
    assert seen[-1].vector == [0.0, 0.0, 0.0, 1.0]  # cosine: stored normalized
    flt = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value="g1"))],
                        must_not=[models.FieldCondition(key="n", range=models.Range(gte=40))])
    recs, _ = client.scroll("pts", scroll_filter=flt, limit=100, with_payload=["n"])
    assert [r.id for r in recs] == [i for i in range(40) if i % 3 == 1] and recs[0].payload == {"n": 1}
    assert recs[0].vector is None
    assert client.count("pts", count_filter=flt).count == len(recs)
    any_flt = models.Filter(should=[models.FieldCondition(key="n", match=models.MatchAny(any=[3, 4])),
                                    models.HasIdCondition(has_id=[uid])])
    assert client.count("pts", count_filter=any_flt).count == 3
    got = client.retrieve("pts", [3, 999, uid], with_payload=False)
    assert sorted(map(str, (r.id for r in got))) == sorted(["3", uid]) and not got[0].payload
    client.delete("pts", points_selector=models.PointIdsList(points=[0, 1, uid]))
    client.delete("pts", points_selector=models.FilterSelector(filter=models.Filter(
        must=[models.FieldCondition(key="group", match=models.MatchValue(value="g2"))])))
    remaining = [r.id for r in client.scroll("pts", limit=100)[0]]
    assert remaining == [i for i in range(2, 50) if i % 3 != 2]
    client.set_payload("pts", payload={"extra": True}, points=[3])
    assert client.retrieve("pts", [3])[0].payload["extra"] is True


def test_query_search_params_and_payload_index(client) -> None:
    make(client, "q", 8, models.Distance.DOT)
    pts = points(200, 8, seed=3)
    client.upsert("q", points=pts)
    vecs = np.array([p.vector for p in pts], np.float32)
    query = np.random.default_rng(9).standard_normal(8).astype(np.float32)
    want = np.argsort(-(vecs @ query))[:5].tolist()
    res = client.query_points("q", query=query.tolist(), limit=5, search_params=models.SearchParams(exact=True),
                              with_payload=True)
    assert [p.id for p in res.points] == want
    assert res.points[0].score == pytest.approx(float(vecs[want[0]] @ query), rel=1e-5)
    flt = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value="g0"))])
    res = client.query_points("q", query=query.tolist(), limit=5, query_filter=flt)
    assert all(p.id % 3 == 0 for p in res.points) and len(res.points) == 5
    by_id = client.query_points("q", query=want[0], limit=1).points  # nearest to a stored point, itself excluded
    assert by_id and by_id[0].id != want[0]
    batch = client.query_batch_points("q", requests=[models.QueryRequest(query=query.tolist(), limit=3),
                                                     models.QueryRequest(query=(-query).tolist(), limit=3)])
    assert [p.id for p in batch[0].points] == want[:3] and len(batch[1].points) == 3
    client.create_payload_index("q", "group", field_schema=models.PayloadSchemaType.KEYWORD)
    client.create_payload_index("q", "n", field_schema=models.PayloadSchemaType.INTEGER)
    schema = client.get_collection("q").payload_schema
    assert schema["group"].data_type == models.PayloadSchemaType.KEYWORD and schema["group"].points == 200
    assert schema["n"].data_type == models.PayloadSchemaType.INTEGER
    ordered, _ = client.scroll("q", limit=3, order_by=models.OrderBy(key="n", direction=models.Direction.DESC))
    assert [r.id for r in ordered] == [199, 198, 197]


def test_search_rpc_and_sparse_search(client, qdrant_server_module: QdrantGrpcServer) -> None:
    make(client, "s", 2, models.Distance.DOT)
    client.upsert("s", points=[models.PointStruct(id=i, vector=[float(i), 1.0]) for i in range(5)])
    with grpc.insecure_channel(qdrant_server_module.address) as ch:
        res = g.PointsStub(ch).Search(g.SearchPoints(collection_name="s", vector=[1.0, 0.0], limit=2,
                                                     with_payload=g.WithPayloadSelector(enable=True)))
    assert [p.id.num for p in res.result] == [4, 3]


def test_aliases_are_atomic_and_resolved_on_every_call(client) -> None:
    make(client, "blue")
    make(client, "green")
    client.upsert("blue", points=points(3))
    client.upsert("green", points=points(5))
    create = models.CreateAliasOperation
    client.update_collection_aliases(change_aliases_operations=[
        create(create_alias=models.CreateAlias(collection_name="blue", alias_name="prod"))])
    assert client.count("prod").count == 3
    # A failing batch changes nothing: the alias still points at blue.
    assert code_of(lambda: client.update_collection_aliases(change_aliases_operations=[
        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="prod")),
        create(create_alias=models.CreateAlias(collection_name="missing", alias_name="prod"))])) \
        == grpc.StatusCode.NOT_FOUND
    assert client.count("prod").count == 3
    client.update_collection_aliases(change_aliases_operations=[
        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="prod")),
        create(create_alias=models.CreateAlias(collection_name="green", alias_name="prod"))])
    assert client.count("prod").count == 5 and client.get_collection("prod").points_count == 5
    client.upsert("prod", points=points(1, start=100))
    assert client.count("green").count == 6
    assert [(a.alias_name, a.collection_name) for a in client.get_collection_aliases("green").aliases] \
        == [("prod", "green")]
    assert client.get_collection_aliases("blue").aliases == []
    assert ("prod", "green") in [(a.alias_name, a.collection_name) for a in client.get_aliases().aliases]
    client.delete_collection("green")  # its aliases go with it
    assert "prod" not in [a.alias_name for a in client.get_aliases().aliases]
    assert code_of(lambda: client.count("prod")) == grpc.StatusCode.NOT_FOUND


def test_server_errors(client, qdrant_server_module: QdrantGrpcServer) -> None:
    make(client, "err")
    wrong_dim = [models.PointStruct(id=1, vector=[1.0, 2.0])]
    assert code_of(lambda: client.upsert("err", points=wrong_dim)) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: client.upsert("absent", points=points(1))) == grpc.StatusCode.NOT_FOUND
    with grpc.insecure_channel(qdrant_server_module.address) as ch:
        stub = g.PointsStub(ch)
        bad_id = g.UpsertPoints(collection_name="err", points=[g.PointStruct(
            id=g.PointId(uuid="not-a-uuid"), vectors=g.Vectors(vector=g.Vector(dense=g.DenseVector(data=[1] * 4))))])
        with pytest.raises(grpc.RpcError) as e:
            stub.Upsert(bad_id)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "UUID" in e.value.details()
    assert client.count("err").count == 0
    assert code_of(lambda: client.create_collection(
        "bad/name", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))) \
        == grpc.StatusCode.INVALID_ARGUMENT


def test_api_key_and_message_limit(tmp_path) -> None:
    with QdrantGrpcServer(tmp_path / "keyed", api_key="s3cret", max_message_bytes=100_000) as server:
        good = server.client()
        make(good, "k", 64)
        assert server.client(api_key="wrong").collection_exists  # building a client sends nothing
        assert code_of(lambda: server.client(api_key="wrong").get_collections()) == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(lambda: server.client(api_key=None).count("k")) == grpc.StatusCode.UNAUTHENTICATED
        big = points(500, 64)  # ~150 kB
        assert code_of(lambda: good.upsert("k", points=big)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        good.upsert("k", points=big[:100])
        assert good.count("k").count == 100
        with grpc.insecure_channel(server.address) as ch:  # HealthCheck needs no key, as on a server
            assert g.QdrantStub(ch).HealthCheck(g.HealthCheckRequest()).version


def test_collections_and_aliases_survive_a_restart(tmp_path) -> None:
    storage = tmp_path / "persist"
    with QdrantGrpcServer(storage) as server:
        c = server.client()
        make(c, "kept")
        c.upsert("kept", points=points(10))
        c.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name="kept", alias_name="k"))])
        c.create_payload_index("kept", "group", field_schema=models.PayloadSchemaType.KEYWORD)
        snap = c.create_snapshot("kept")
        assert [s.name for s in c.list_snapshots("kept")] == [snap.name] and snap.size > 0
        c.create_collection("sharded", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT),
                            sharding_method=models.ShardingMethod.CUSTOM)
        c.create_shard_key("sharded", "a")
        c.upsert("sharded", points=points(3), shard_key_selector="a")
    with QdrantGrpcServer(storage) as server:
        c = server.client()
        assert c.count("k").count == 10
        assert c.retrieve("kept", [4])[0].payload["n"] == 4
        assert "group" in c.get_collection("kept").payload_schema
        assert c.count("sharded", shard_key_selector="a").count == 3
        assert c.delete_snapshot("kept", snap.name) is not False
        assert c.list_snapshots("kept") == []


def test_custom_sharding_with_shard_keys(client) -> None:
    client.create_collection("sk", vectors_config=models.VectorParams(size=4, distance=models.Distance.EUCLID),
                             sharding_method=models.ShardingMethod.CUSTOM)
    for key in ("eu", "us"):
        client.create_shard_key("sk", key)
    assert code_of(lambda: client.create_shard_key("sk", "eu")) == grpc.StatusCode.ALREADY_EXISTS
    eu, us = points(30, seed=1), points(20, seed=2, start=30)
    client.upsert("sk", points=eu, shard_key_selector="eu")
    client.upsert("sk", points=us, shard_key_selector="us")
    assert code_of(lambda: client.upsert("sk", points=points(1, start=99))) == grpc.StatusCode.INVALID_ARGUMENT
    assert client.count("sk").count == 50
    assert client.count("sk", shard_key_selector="eu").count == 30
    assert client.get_collection("sk").points_count == 50
    assert client.get_collection("sk").config.params.sharding_method == models.ShardingMethod.CUSTOM
    seen, offset = [], None
    while True:  # pages merged across the two shards, in id order
        recs, offset = client.scroll("sk", limit=7, offset=offset)
        seen += [r.id for r in recs]
        if offset is None:
            break
    assert seen == list(range(50))
    assert [r.id for r in client.scroll("sk", limit=100, shard_key_selector="us")[0]] == list(range(30, 50))
    query = [0.1, 0.2, 0.3, 0.4]
    vecs = np.array([p.vector for p in eu + us], np.float32)
    want = np.argsort(np.linalg.norm(vecs - np.array(query, np.float32), axis=1))[:6].tolist()
    hits = client.query_points("sk", query=query, limit=4, offset=2).points  # euclid: smallest distance first
    assert [h.id for h in hits] == want[2:6]
    assert all(h.id >= 30 for h in client.query_points("sk", query=query, shard_key_selector="us").points)
    client.create_payload_index("sk", "group", field_schema=models.PayloadSchemaType.KEYWORD)
    client.create_shard_key("sk", 7)  # a new shard gets the collection's payload indexes
    assert sorted(str(k.key) for k in client.list_shard_keys("sk").shard_keys) == ["7", "eu", "us"]
    assert client.get_collection("sk").payload_schema["group"].points == 50
    client.delete("sk", points_selector=models.PointIdsList(points=[0, 1]), shard_key_selector="eu")
    assert client.count("sk").count == 48 and client.retrieve("sk", [0, 1, 2])[0].id == 2
    client.set_payload("sk", payload={"seen": True}, points=[2, 35])  # no shard key: every shard
    assert client.count("sk", count_filter=models.Filter(must=[models.FieldCondition(
        key="seen", match=models.MatchValue(value=True))])).count == 2
    client.delete_shard_key("sk", "us")
    assert client.count("sk").count == 28
    assert code_of(lambda: client.count("sk", shard_key_selector="us")) == grpc.StatusCode.NOT_FOUND
    client.delete_collection("sk")


def test_batch_update_and_vector_updates(client) -> None:
    client.create_collection("ub", vectors_config={"a": models.VectorParams(size=2, distance=models.Distance.DOT),
                                                   "b": models.VectorParams(size=2, distance=models.Distance.DOT)})
    res = client.batch_update_points("ub", update_operations=[
        models.UpsertOperation(upsert=models.PointsList(points=[
            models.PointStruct(id=i, vector={"a": [1.0, float(i)], "b": [0.0, 1.0]}, payload={"i": i})
            for i in range(5)])),
        models.SetPayloadOperation(set_payload=models.SetPayload(payload={"x": 1}, points=[1, 2])),
        models.DeleteOperation(delete=models.PointIdsList(points=[4])),
    ])
    assert len(res) == 3
    assert client.count("ub").count == 4
    assert client.retrieve("ub", [1])[0].payload == {"i": 1, "x": 1}
    client.update_vectors("ub", points=[models.PointVectors(id=0, vector={"a": [9.0, 9.0]})])
    client.delete_vectors("ub", vectors=["b"], points=[3])
    got = {r.id: r.vector for r in client.retrieve("ub", [0, 3], with_vectors=True)}
    assert got[0] == {"a": [9.0, 9.0], "b": [0.0, 1.0]} and got[3] == {"a": [1.0, 3.0]}
