"""FAISS source: real index files of every common type, read back and migrated into embedded Qdrant."""

from __future__ import annotations

import json
import re
from pathlib import Path

import faiss
import numpy as np
import pytest

from cortex.api import connect, migrate, verify
from cortex.errors import SourceError
from cortex.sources import SourceOptions, open_source
from cortex.sources.faiss import FaissSource, looks_like_faiss

D = 32
N = 1200
RNG = np.random.default_rng(11)
X = RNG.standard_normal((N, D)).astype(np.float32)
IDS = np.arange(N, dtype=np.int64) * 7 + 3  # custom ids: not positions

# spec -> (custom ids?, max mean relative error of the read vectors vs the originals)
SPECS: dict[str, tuple[bool, float]] = {
    "Flat": (False, 1e-6),
    "HNSW16": (False, 1e-6),
    "HNSW16_SQ8": (False, 0.03),
    "IVF8,Flat": (True, 1e-6),
    "IVF8,PQ8x4": (True, 0.8),
    "IVF8,SQ8": (True, 0.03),
    "IVF8,SQfp16": (True, 1e-3),
    "IVF8,PQ8x4fsr": (True, 0.8),
    "SQ8": (False, 0.03),
    "SQ4": (False, 0.2),
    "PQ8x4": (False, 0.8),
    "OPQ8_32,IVF8,Flat": (True, 1e-5),  # rotation only: exact after the reverse transform
    "OPQ8,IVF8,PQ8x4": (True, 0.8),
    "PCA16,Flat": (False, 0.8),
    "IDMap,Flat": (True, 1e-6),
    "IDMap2,Flat": (True, 1e-6),
    "IDMap,HNSW16": (True, 1e-6),
    "IDMap2,IVF8,SQ8": (True, 0.03),
}
LOSSY = {"HNSW16_SQ8", "IVF8,PQ8x4", "IVF8,SQ8", "IVF8,SQfp16", "IVF8,PQ8x4fsr", "SQ8", "SQ4", "PQ8x4",
         "OPQ8,IVF8,PQ8x4", "PCA16,Flat", "IDMap2,IVF8,SQ8"}


def _build(spec: str, metric: int = faiss.METRIC_L2) -> faiss.Index:
    index = faiss.index_factory(D, spec, metric)
    if spec.startswith("OPQ"):  # fewer OPQ iterations: the default 50 take ~30 s here
        opq = faiss.downcast_VectorTransform(faiss.downcast_index(index).chain.at(0))
        opq.niter, opq.niter_pq = 2, 2
    index.train(X)
    if SPECS[spec][0]:
        index.add_with_ids(X, IDS)
    else:
        index.add(X)
    return index


def _fname(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", spec) + ".index"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """OpenMP spin-waits on a loaded 2-core CI box: training is 10x faster on one thread."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("faiss")
    out = {}
    for spec in SPECS:
        p = root / _fname(spec)
        faiss.write_index(_build(spec), str(p))
        out[spec] = p
    return out


def _read_all(src: FaissSource, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    ids, vecs = [], []
    for b in src.batches(batch_size):
        ids.append(np.asarray(b.ids))
        vecs.append(b.vectors)
    return np.concatenate(ids), np.concatenate(vecs)


def _originals(spec: str, ids: np.ndarray) -> np.ndarray:
    return X[(ids - 3) // 7] if SPECS[spec][0] else X[ids]


def _relerr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=1).mean() / np.linalg.norm(b, axis=1).mean())


# -- detection --------------------------------------------------------------------------------------


def test_detect(files, tmp_path):
    p = files["Flat"]
    assert FaissSource.detect(str(p))
    other = tmp_path / "vectors.bin"  # no FAISS suffix: found by the header (before hnswlib's .bin)
    other.write_bytes(p.read_bytes())
    assert FaissSource.detect(str(other)) and open_source(str(other)).kind == "faiss"
    assert looks_like_faiss(p.read_bytes()[:40])
    assert not FaissSource.detect(str(tmp_path))
    j = tmp_path / "x.jsonl"
    j.write_text('{"id": 1, "vector": [1]}\n')
    assert not FaissSource.detect(str(j))
    assert open_source(str(files["IVF8,PQ8x4"])).kind == "faiss"


# -- every index type -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", list(SPECS))
def test_read_every_type(files, spec):
    custom, tol = SPECS[spec]
    with FaissSource(str(files[spec])) as src:
        info = src.info()
        assert (info.dim, info.distance, info.count) == (D, "euclid", N)
        assert info.lossy == (spec in LOSSY), info.warnings
        ids, vecs = _read_all(src)
    assert vecs.dtype == np.float32 and vecs.shape == (N, D)  # always the original space
    assert len(np.unique(ids)) == N
    assert set(ids.tolist()) == set((IDS if custom else np.arange(N)).tolist())
    assert _relerr(vecs, _originals(spec, ids)) <= tol


@pytest.mark.parametrize("spec", ["Flat", "IVF8,SQ8", "IDMap2,Flat", "IVF8,PQ8x4fsr"])
def test_resume_continues_exactly(files, spec):
    with FaissSource(str(files[spec])) as src:
        all_ids, _ = _read_all(src, 100)
        it = src.batches(100)
        first, second = next(it), next(it)
        rest = list(src.batches(100, resume=second.cursor))
    again = np.concatenate([np.asarray(first.ids), np.asarray(second.ids)] + [np.asarray(b.ids) for b in rest])
    np.testing.assert_array_equal(again, all_ids)
    assert json.loads(json.dumps(second.cursor)) == second.cursor  # JSON-able


def test_ivf_decode_matches_faiss_reconstruct(files):
    """The list-walk decode (list number prefix + sa_decode) equals faiss's own reconstruct."""
    for spec in ("IVF8,PQ8x4", "IVF8,SQ8"):
        index = faiss.read_index(str(files[spec]))
        ivf = faiss.extract_index_ivf(index)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # lookup by custom id
        with FaissSource(str(files[spec])) as src:
            ids, vecs = _read_all(src)
        ref = np.vstack([index.reconstruct(int(i)) for i in ids[:300]])
        np.testing.assert_allclose(vecs[:300], ref, rtol=0, atol=1e-6)


def test_two_byte_list_numbers(tmp_path):
    """nlist > 256: the list number prefix takes 2 little-endian bytes (coarse_code_size)."""
    index = faiss.index_factory(D, "IVF300,SQ8")
    index.train(X)
    index.add_with_ids(X, IDS)
    assert faiss.extract_index_ivf(index).coarse_code_size() == 2
    p = tmp_path / "ivf300.index"
    faiss.write_index(index, str(p))
    ids, vecs = _read_all(FaissSource(str(p)))
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    ref = np.vstack([index.reconstruct(int(i)) for i in ids])
    np.testing.assert_allclose(vecs, ref, rtol=0, atol=1e-6)
    assert _relerr(vecs, X[(ids - 3) // 7]) < 0.03


def test_memory_mapped_and_id_origin(files):
    for spec, origin in (("Flat", "positions"), ("IVF8,Flat", "IVF lists"), ("HNSW16", "positions"),
                         ("IDMap2,Flat", "IDMap")):
        with FaissSource(str(files[spec])) as src:
            details = src.info().details
        assert details["memory_mapped"] is True and origin in details["ids"]


# -- lossy codecs: the warning states the expected error ----------------------------------------------


def test_lossy_warnings(files):
    with FaissSource(str(files["SQ8"])) as src:
        info = src.info()
        ids, vecs = _read_all(src)
    measured = _relerr(vecs, X[ids])
    (w,) = [w for w in info.warnings if "8bit" in w]
    predicted = float(re.search(r"about ([0-9.]+)%", w).group(1)) / 100
    assert measured / 2 < predicted < measured * 2  # the estimate is in the right range
    with FaissSource(str(files["IVF8,PQ8x4"])) as src:
        assert any("PQ8x4" in w and "4 bytes per vector" in w for w in src.info().warnings)
    with FaissSource(str(files["PCA16,Flat"])) as src:
        info = src.info()
        ids, vecs = _read_all(src)
    (w,) = [w for w in info.warnings if "PCA" in w]
    assert "32 -> 16" in w and "variance" in w
    predicted = float(re.search(r"relative error of about ([0-9.]+)%", w).group(1)) / 100
    assert abs(predicted - _relerr(vecs, X[ids])) < 0.1
    with FaissSource(str(files["IVF8,SQfp16"])) as src:
        assert any("fp16" in w and "0.02%" in w for w in src.info().warnings)
    with FaissSource(str(files["OPQ8_32,IVF8,Flat"])) as src:
        assert not src.info().lossy  # a rotation is inverted exactly


def test_inner_product_unit_norms_says_cosine(tmp_path):
    xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(D)
    index.add(xn)
    p = tmp_path / "ip.index"
    faiss.write_index(index, str(p))
    info = FaissSource(str(p)).info()
    assert info.distance == "dot"
    assert any("cosine" in w and "normalized" in w for w in info.warnings)
    index = faiss.IndexFlatIP(D)
    index.add(X)
    faiss.write_index(index, str(p))
    assert not any("cosine" in w for w in FaissSource(str(p)).info().warnings)


def test_a_huge_finite_vector_is_not_an_overflow(tmp_path):
    """A finite row whose squared norm overflows float32 (3e20) has its real norm: no numpy RuntimeWarning, and the
    unit-norm check is false, not fooled."""
    import warnings

    xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    xn[5] = 3e20
    index = faiss.IndexFlatIP(D)
    index.add(xn)
    faiss.write_index(index, str(tmp_path / "ip.index"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = FaissSource(str(tmp_path / "ip.index")).info()
    assert info.distance == "dot" and not any("cosine" in w for w in info.warnings)


# -- ids: IDMap and remove_ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["IDMap,Flat", "IDMap2,Flat", "IDMap,IVF8,Flat"])
def test_idmap_after_remove_ids(tmp_path, spec):
    index = faiss.index_factory(D, spec)
    index.train(X)
    index.add_with_ids(X, IDS)
    gone = IDS[[0, 5, 600, N - 1]]
    assert index.remove_ids(gone) == 4
    p = tmp_path / "removed.index"
    faiss.write_index(index, str(p))
    with FaissSource(str(p)) as src:
        assert src.info().count == N - 4
        ids, vecs = _read_all(src, 128)
        assert set(ids.tolist()) == set(IDS.tolist()) - set(gone.tolist())
        np.testing.assert_array_equal(vecs, X[(ids - 3) // 7])
        found, _ = src.search(X[[1, 2, 700]], 3)
    assert [f[0] for f in found] == IDS[[1, 2, 700]].tolist()
    if "IVF" in spec:  # faiss's own IDMap mapping is broken here; the reader repairs it
        assert any("removed" in w for w in FaissSource(str(p)).info().warnings)


def test_ivf_remove_ids(tmp_path):
    index = _build("IVF8,Flat")
    index.remove_ids(IDS[:10])
    p = tmp_path / "ivf.index"
    faiss.write_index(index, str(p))
    ids, vecs = _read_all(FaissSource(str(p)))
    assert len(ids) == N - 10 and not set(IDS[:10].tolist()) & set(ids.tolist())
    np.testing.assert_array_equal(vecs, X[(ids - 3) // 7])


# -- native search -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["Flat", "HNSW16", "IVF8,Flat", "IDMap,Flat", "OPQ8,IVF8,PQ8x4"])
def test_native_search_returns_source_ids(files, spec):
    with FaissSource(str(files[spec])) as src:
        ids, scores = src.search(X[:5], 4)
        all_ids, _ = _read_all(src)
    expect = IDS[:5] if SPECS[spec][0] else np.arange(5)
    if spec in LOSSY:
        assert sum(int(e) in got for e, got in zip(expect, ids, strict=True)) >= 4
    else:
        assert [got[0] for got in ids] == expect.tolist()
        np.testing.assert_allclose(scores[:, 0], 0, atol=1e-3)  # euclid: L2 distance to itself
    assert set(i for row in ids for i in row) <= set(all_ids.tolist())


# -- binary indexes -----------------------------------------------------------------------------------


def _bits(n: int, d: int = 64) -> np.ndarray:
    return np.random.default_rng(4).integers(0, 2, (n, d)).astype(np.uint8)


def test_binary_indexes(tmp_path):
    bits = _bits(500)
    codes = np.packbits(bits, axis=1, bitorder="little")  # faiss's bit order (fvecs2bitvecs)
    flat = faiss.IndexBinaryFlat(64)
    flat.add(codes)
    idmap = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(64))
    idmap.add_with_ids(codes, np.arange(500) + 1000)
    ivf = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(64), 64, 4)
    ivf.train(codes)
    ivf.add_with_ids(codes, np.arange(500) * 3)
    hnsw = faiss.IndexBinaryHNSW(64, 8)
    hnsw.add(codes)
    for name, index, to_row in (("flat", flat, lambda i: i), ("idmap", idmap, lambda i: i - 1000),
                                ("ivf", ivf, lambda i: i // 3), ("hnsw", hnsw, lambda i: i)):
        p = tmp_path / f"bin_{name}.index"
        faiss.write_index_binary(index, str(p))
        with FaissSource(str(p)) as src:
            info = src.info()
            assert (info.dim, info.distance, info.count, info.lossy) == (64, "manhattan", 500, False)
            assert any("Hamming" in w and "manhattan" in w for w in info.warnings)
            ids, vecs = _read_all(src, 128)
            np.testing.assert_array_equal(vecs, bits[to_row(ids)].astype(np.float32))
            found, scores = src.search(bits[:3].astype(np.float32), 2)
            assert [to_row(f[0]) for f in found] == [0, 1, 2] and np.all(scores[:, 0] == 0)


def test_binary_migrate_manhattan_equals_hamming(tmp_path, qdrant_path):
    bits = _bits(300)
    index = faiss.IndexBinaryFlat(64)
    index.add(np.packbits(bits, axis=1, bitorder="little"))
    p = tmp_path / "bin.index"
    faiss.write_index_binary(index, str(p))
    s = migrate(str(p), "b", path=str(qdrant_path), state_dir=str(tmp_path / "state"))
    assert (s.written, s.distance) == (300, "manhattan")
    with connect(path=str(qdrant_path)) as t:
        hits = t.search("b", bits[:1].astype(np.float32), k=3, exact=True)[0]
    hamming = np.count_nonzero(bits != bits[0], axis=1)
    assert hits[0] == (0, 0.0)
    for pid, score in hits:
        assert abs(score - hamming[int(pid)]) < 1e-4


# -- metadata JSON --------------------------------------------------------------------------------------


def test_metadata_payloads(files, tmp_path):
    meta = {str(i): {"title": f"doc {i}", "n": i, "tags": ["a", str(i % 3)]} for i in range(0, N, 2)}
    mp = tmp_path / "metadata.json"
    mp.write_text(json.dumps(meta))
    with FaissSource(str(files["Flat"]), SourceOptions(metadata=str(mp))) as src:
        info = src.info()
        assert any("entries" in w for w in info.warnings)  # half the ids have no entry
        b = next(src.batches(10))
    assert b.payloads[0] == meta["0"] and b.payloads[1] == {}
    # IDMap: keyed by the custom id
    meta = {str(i): {"custom": int(i)} for i in IDS}
    mp.write_text(json.dumps(meta))
    with FaissSource(str(files["IDMap,Flat"]), SourceOptions(metadata=str(mp))) as src:
        b = next(src.batches(10))
    assert [p["custom"] for p in b.payloads] == np.asarray(b.ids).tolist()
    assert FaissSource(str(files["Flat"]), SourceOptions(metadata=str(mp))).fingerprint()["metadata"]


def test_bad_metadata(files, tmp_path):
    bad = tmp_path / "meta.json"
    bad.write_text("{not json")
    with pytest.raises(SourceError, match="meta.json: not a readable JSON"):
        FaissSource(str(files["Flat"]), SourceOptions(metadata=str(bad))).info()
    bad.write_text('"a string"')
    with pytest.raises(SourceError, match="keyed by id"):
        FaissSource(str(files["Flat"]), SourceOptions(metadata=str(bad))).info()
    with pytest.raises(SourceError, match="no such file"):
        FaissSource(str(files["Flat"]), SourceOptions(metadata=str(tmp_path / "nope.json"))).info()


# -- end to end ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", list(SPECS))
def test_migrate_and_verify_every_type(files, spec, tmp_path, qdrant_path):
    custom, tol = SPECS[spec]
    s = migrate(str(files[spec]), "c", path=str(qdrant_path), batch_size=300, state_dir=str(tmp_path / "state"))
    assert (s.read, s.written, s.rejected) == (N, N, 0)
    assert s.distance == "euclid"
    r = verify("c", source=str(files[spec]), path=str(qdrant_path), full=True)
    assert r.ok, r.problems
    pick = IDS[[0, 17, N - 1]] if custom else np.array([0, 17, N - 1])
    with connect(path=str(qdrant_path)) as t:
        info = t.collection_info("c")
        assert (info.dim, info.distance, info.points) == (D, "euclid", N)
        got = t.retrieve("c", pick.tolist(), with_vectors=True)
    assert set(got) == set(pick.tolist())  # custom ids kept as Qdrant point ids
    for pid in pick.tolist():
        assert _relerr(np.asarray(got[pid].vector)[None, :], _originals(spec, np.array([pid]))) <= max(tol, 1e-6) * 3


def test_migrate_with_metadata_cli(files, cli, tmp_path):
    meta = {str(i): {"title": f"doc {i}", "n": i} for i in range(N)}
    mp = tmp_path / "metadata.json"
    mp.write_text(json.dumps(meta))
    qd = tmp_path / "qd"
    res = cli("qdrant", "migrate", "--source", files["Flat"], "--target", "c", "--path", qd, "--metadata", mp)
    assert res.exit_code == 0, res.output
    with connect(path=str(qd)) as t:
        p = t.retrieve("c", [42], with_vectors=True)[42]
    assert p.payload == {"title": "doc 42", "n": 42}
    np.testing.assert_allclose(p.vector, X[42], rtol=1e-6)
    res = cli("qdrant", "migrate", "--source", files["IVF8,Flat"], "--target", "c2", "--path", qd,
              "--source-type", "faiss")
    assert res.exit_code == 0, res.output
    with connect(path=str(qd)) as t:
        assert t.count("c2") == N and IDS[9] in t.retrieve("c2", [int(IDS[9])], with_vectors=False)


# -- bad inputs ---------------------------------------------------------------------------------------


def test_missing_and_directory(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        FaissSource(str(tmp_path / "nope.index")).info()
    with pytest.raises(SourceError, match="directory"):
        FaissSource(str(tmp_path)).info()


@pytest.mark.parametrize("frac", [0.0, 0.001, 0.5, 0.99])
@pytest.mark.parametrize("spec", ["Flat", "IVF8,PQ8x4", "IDMap,Flat", "HNSW16"])
def test_truncated(files, tmp_path, spec, frac):
    data = files[spec].read_bytes()
    p = tmp_path / "cut.index"
    p.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(SourceError) as e:
        FaissSource(str(p)).info()
    assert "cut.index" in str(e.value) and "\n" not in str(e.value)


def test_corrupt_and_unknown_type(files, tmp_path):
    junk = tmp_path / "junk.index"
    junk.write_bytes(b"this is not an index at all" * 10)
    with pytest.raises(SourceError, match="junk.index: not a readable FAISS index"):
        FaissSource(str(junk)).info()
    unknown = tmp_path / "unknown.index"
    unknown.write_bytes(b"IxZZ" + files["Flat"].read_bytes()[4:])  # a valid header with an unknown fourcc
    assert looks_like_faiss(unknown.read_bytes()[:40])
    with pytest.raises(SourceError, match="not recognized"):
        FaissSource(str(unknown)).info()


def test_empty_index(tmp_path):
    p = tmp_path / "empty.index"
    faiss.write_index(faiss.IndexFlatL2(D), str(p))
    with pytest.raises(SourceError, match="empty.index: the FAISS index holds no vectors"):
        FaissSource(str(p)).info()
    ivf = faiss.index_factory(D, "IVF8,Flat")
    ivf.train(X)
    faiss.write_index(ivf, str(p))
    with pytest.raises(SourceError, match="no vectors"):
        FaissSource(str(p)).info()


def test_unsupported_type(tmp_path):
    lsh = faiss.IndexLSH(D, 64)
    lsh.train(X)
    lsh.add(X)
    p = tmp_path / "lsh.index"
    faiss.write_index(lsh, str(p))
    with pytest.raises(SourceError, match="IndexLSH"):
        FaissSource(str(p)).info()


def test_cli_truncated_is_one_line_error(files, cli, tmp_path):
    p = tmp_path / "cut.index"
    p.write_bytes(files["Flat"].read_bytes()[:1000])
    res = cli("qdrant", "migrate", "--source", p, "--target", "c", "--path", tmp_path / "qd")
    assert res.exit_code == 2
    out = res.output.strip()
    assert "cut.index" in out and "Traceback" not in out and len(out.splitlines()) == 1


def test_source_file_unchanged(files, tmp_path, qdrant_path):
    before = files["IVF8,Flat"].read_bytes()
    migrate(str(files["IVF8,Flat"]), "c", path=str(qdrant_path), state_dir=str(tmp_path / "state"))
    assert files["IVF8,Flat"].read_bytes() == before
