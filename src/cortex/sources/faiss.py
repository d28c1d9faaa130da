"""A FAISS index file (``faiss.write_index``), with optional ``--metadata`` JSON keyed by id.

Every common index type is read: Flat (L2/IP), HNSW (Flat/SQ/PQ), IVF (Flat/PQ/SQ/fast-scan),
SQ, PQ, OPQ/PCA pre-transforms (vectors come back in the *original* space), IndexIDMap /
IndexIDMap2 (custom ids, also after ``remove_ids``), IndexRefine and binary indexes.

How vectors are read, and why:

* Flat-storage indexes (Flat, HNSW, SQ, PQ, Refine): slices of ``reconstruct_n``; ids are
  positions.
* IVF indexes: the inverted lists are walked (``list_size``/``get_ids``/``get_codes``).
  ``IndexIVF.reconstruct_n`` takes *stored ids*, not positions, and returns garbage for custom
  ids.  IVFFlat codes are the raw float32 vectors; other IVF codes are decoded with
  ``sa_decode`` after prefixing the list number (``coarse_code_size`` little-endian bytes, as
  ``encode_listno`` writes them).  Fast-scan lists are unpacked with the index's CodePacker.
* IndexIDMap: ``reconstruct_n`` on the wrapper aborts the process (SIGABRT), so ids come from
  ``id_map`` and vectors from the inner index.
* The file is memory-mapped (``IO_FLAG_MMAP_IFC | IO_FLAG_READ_ONLY``) so a huge index is not
  read into memory before streaming; when the mapping fails the file is read normally.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cortex.errors import SourceError
from cortex.sources.base import Batch, Source, SourceInfo, check_exists, even_ranges, parse_distance, require, row_norms

SUFFIXES = (".index", ".faiss")
_DUMMY = (1 << 20).to_bytes(8, "little")  # write_index_header writes this twice after ntotal
_UNSUPPORTED = {
    "IndexLSH": "stores only random-projection sign bits, not the vectors",
    "IndexBinaryHash": "is a hash table over binary codes",
    "IndexBinaryMultiHash": "is a hash table over binary codes",
}
_EXACT = {"IndexFlat", "IndexFlatL2", "IndexFlatIP", "IndexFlat1D", "IndexIVFFlat", "IndexHNSWFlat",
          "IndexNSGFlat", "IndexNNDescentFlat", "IndexHNSWCagra"}
SAMPLE = 1000  # vectors sampled for norm checks and error estimates


def looks_like_faiss(head: bytes) -> bool:
    """True for the header of a FAISS index (float: fourcc, d, ntotal, 2 x 1<<20; binary: ``IB``...)."""
    if len(head) < 12 or head[:1] != b"I" or not head[:4].isalnum():
        return False
    if head[:2] == b"IB":  # binary: fourcc, d (int32), code_size (int32), ntotal (int64)
        d = int.from_bytes(head[4:8], "little", signed=True)
        cs = int.from_bytes(head[8:12], "little", signed=True)
        return d > 0 and d % 8 == 0 and cs == d // 8
    return len(head) >= 32 and head[16:24] == _DUMMY and head[24:32] == _DUMMY


def _faiss_msg(e: BaseException) -> str:
    """The useful tail of a faiss C++ error (drops the function signature and source location)."""
    s = " ".join(str(e).split())
    if "Error: " in s:
        s = s.rsplit("Error: ", 1)[1]
    elif s.startswith("Error in ") and ".cpp:" in s:
        s = s.split(".cpp:", 1)[1].split(": ", 1)[-1]
    return s[:200]


@dataclass
class _Plan:
    """How to read one opened index: wrappers peeled off, the storage core and its read mode."""

    root: Any  # owning object returned by read_index: keeps every sub-object alive
    binary: bool
    ntotal: int
    dim: int
    metric: int | None  # faiss metric_type; None for binary (Hamming)
    core: Any
    mode: str  # flat | ivf-flat | ivf-decode | ivf-fastscan | ivf-binary
    chain: list[str] = field(default_factory=list)
    transforms: list[Any] = field(default_factory=list)  # apply order; reversed on read
    n_outer: int = 0  # transforms that sit above the IDMap (applied to queries before its inner)
    id_map: np.ndarray | None = None
    idmap_inner: Any = None
    label_rank: np.ndarray | None = None  # sorted inner labels when IDMap-over-IVF had ids removed
    packer: Any = None
    mmap: bool = False
    warnings: list[str] = field(default_factory=list)


class FaissSource(Source):
    kind = "faiss"
    extra = "faiss"
    description = "a FAISS index file (.index/.faiss), + --metadata metadata.json keyed by id"

    def __init__(self, path: str, options: Any = None) -> None:
        super().__init__(path, options)
        self._p: _Plan | None = None
        self._meta: dict[str, Any] | None = None
        self._info: SourceInfo | None = None
        self._brute: bool | None = None

    # -- detection and opening -------------------------------------------------------------------------

    @classmethod
    def detect(cls, path: str) -> bool:
        p = Path(path)
        if not p.is_file():
            return False
        if p.suffix.lower() in SUFFIXES:
            return True
        try:
            with open(p, "rb") as f:
                return looks_like_faiss(f.read(40))
        except OSError:
            return False

    def _faiss(self) -> Any:
        return require("faiss", self.extra, "FAISS")

    def _read(self) -> tuple[Any, bool, bool]:
        """(index, binary, memory-mapped): mapped read-only when faiss can, else read normally."""
        faiss = self._faiss()
        p = check_exists(self.path)
        if p.is_dir():
            raise SourceError(f"{self.path}: is a directory; the faiss source reads one index file "
                              "(a LangChain folder is --source-type langchain)")
        with open(p, "rb") as f:
            head = f.read(40)
        if not head:
            raise SourceError(f"{self.path}: the file is empty, not a FAISS index")
        binary = head[:2] == b"IB"
        reader = faiss.read_index_binary if binary else faiss.read_index
        flags = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | getattr(faiss, "IO_FLAG_READ_ONLY", 0)
        if flags:
            try:
                return reader(str(p), flags), binary, True
            except RuntimeError:
                pass  # not mappable (or corrupt): a plain read tells which
        try:
            return reader(str(p)), binary, False
        except (RuntimeError, MemoryError) as e:
            raise SourceError(f"{self.path}: not a readable FAISS index ({_faiss_msg(e)}); the file is corrupt, "
                              "truncated, or of an index type this faiss version does not know") from e

    def _plan(self) -> _Plan:
        if self._p is None:
            self._p = self._make_plan()
        return self._p

    def _make_plan(self) -> _Plan:
        faiss = self._faiss()
        root, binary, mapped = self._read()
        down = faiss.downcast_IndexBinary if binary else faiss.downcast_index
        obj = down(root)
        chain: list[str] = []
        transforms: list[Any] = []
        id_map = idmap_inner = None
        n_outer = 0
        while True:
            name = type(obj).__name__
            if name in ("IndexIDMap", "IndexIDMap2", "IndexBinaryIDMap", "IndexBinaryIDMap2"):
                if id_map is not None:
                    raise SourceError(f"{self.path}: nested {name} wrappers are not supported")
                chain.append(name)
                id_map = faiss.vector_to_array(obj.id_map).astype(np.int64, copy=False)
                n_outer = len(transforms)
                obj = idmap_inner = down(obj.index)
            elif name == "IndexPreTransform":
                vts = [faiss.downcast_VectorTransform(obj.chain.at(i)) for i in range(obj.chain.size())]
                chain.append(f"IndexPreTransform({', '.join(type(v).__name__ for v in vts)})")
                transforms.extend(vts)
                obj = down(obj.index)
            elif name in ("IndexRefine", "IndexRefineFlat"):
                chain.append(name)
                obj = down(obj.refine_index)  # the refinement index holds the accurate vectors
            else:
                break
        core = obj
        name = type(core).__name__
        chain.append(_describe(core))
        if name in _UNSUPPORTED:
            raise SourceError(f"{self.path}: {name} {_UNSUPPORTED[name]}, so the original vectors cannot be read "
                              "back; migrate from the vectors the index was built from")
        if binary:
            mode = "ivf-binary" if isinstance(core, faiss.IndexBinaryIVF) else "flat"
            metric = None
            dim = int(core.d)
        else:
            metric = int(root.metric_type)
            dim = int(transforms[0].d_in) if transforms else int(core.d)
            if isinstance(core, faiss.IndexIVF):
                if name == "IndexIVFFlat":
                    mode = "ivf-flat"
                elif isinstance(core, faiss.IndexIVFFastScan):
                    mode = "ivf-fastscan"
                else:
                    mode = "ivf-decode"
            else:
                mode = "flat"
        plan = _Plan(root=root, binary=binary, ntotal=int(root.ntotal), dim=dim, metric=metric, core=core,
                     mode=mode, chain=chain, transforms=transforms, n_outer=n_outer, id_map=id_map,
                     idmap_inner=idmap_inner, mmap=mapped)
        if plan.ntotal == 0:
            raise SourceError(f"{self.path}: the FAISS index holds no vectors (ntotal=0); nothing to migrate")
        if mode == "ivf-fastscan":
            if not hasattr(core, "pq"):
                raise SourceError(f"{self.path}: {name} (an additive-quantizer fast-scan IVF) is not supported; "
                                  "convert it with faiss or migrate from the original vectors")
            plan.packer = core.get_CodePacker()
        if id_map is not None:
            self._check_id_map(plan)
        return plan

    def _check_id_map(self, plan: _Plan) -> None:
        """IDMap ids are id_map[inner label]; repair the mapping faiss breaks on IDMap(IVF).remove_ids."""
        assert plan.id_map is not None
        n = len(plan.id_map)
        if plan.mode == "flat":
            if plan.core.ntotal != n:
                raise SourceError(f"{self.path}: the IndexIDMap has {n} ids but its inner index holds "
                                  f"{plan.core.ntotal} vectors; the file is inconsistent")
            return
        labels = np.concatenate([ids for _, ids in self._ivf_ids(plan)] or [np.empty(0, np.int64)])
        if len(labels) != n:
            raise SourceError(f"{self.path}: the IndexIDMap has {n} ids but its inner IVF index holds "
                              f"{len(labels)} vectors; the file is inconsistent")
        uniq = np.unique(labels)
        if len(uniq) != n:
            raise SourceError(f"{self.path}: the inner IVF index of the IndexIDMap repeats labels (vectors were "
                              "added after remove_ids), so ids cannot be mapped back; re-export the index")
        if n and (uniq[0] < 0 or uniq[-1] >= n):
            # IndexIDMap.remove_ids compacts id_map but IVF keeps the old labels: the survivors, in label
            # order, line up with the compacted id_map (faiss's own search returns wrong ids here).
            plan.label_rank = uniq
            plan.warnings.append(
                "ids were removed from this IndexIDMap over an IVF index, after which faiss's own id mapping is "
                "off (a faiss limitation); Cortex maps the inner labels back to the original ids by their order")

    # -- metadata ----------------------------------------------------------------------------------------

    def _metadata(self) -> dict[str, Any] | None:
        path = self.options.metadata
        if not path:
            return None
        if self._meta is None:
            check_exists(path, "--metadata")
            try:
                obj = orjson.loads(Path(path).read_bytes())
            except (orjson.JSONDecodeError, OSError) as e:
                raise SourceError(f"{path}: not a readable JSON file ({e}); --metadata expects "
                                  '{"<id>": {...payload...}, ...}') from e
            if isinstance(obj, list):  # a list is taken as indexed by id 0..n-1
                obj = {str(i): v for i, v in enumerate(obj)}
            if not isinstance(obj, dict):
                raise SourceError(f"{path}: --metadata must be a JSON object keyed by id, like "
                                  '{"0": {"title": ...}, "1": {...}}')
            self._meta = {str(k): v for k, v in obj.items()}
        return self._meta

    # -- info --------------------------------------------------------------------------------------------

    def info(self) -> SourceInfo:
        if self._info is not None:
            return self._info
        faiss = self._faiss()
        plan = self._plan()
        meta = self._metadata()
        scope, self.scope = self.scope, None  # the sample comes from the whole index
        try:
            sample = next(self._read_pieces(plan, min(SAMPLE, plan.ntotal), None))[1]
        except RuntimeError as e:
            raise SourceError(f"{self.path}: cannot read vectors back from {' > '.join(plan.chain)} "
                              f"({_faiss_msg(e)})") from e
        finally:
            self.scope = scope
        warnings = list(plan.warnings)
        lossy = False
        details: dict[str, Any] = {"index": " > ".join(plan.chain), "memory_mapped": plan.mmap,
                                   "read_mode": plan.mode, "ids": _id_origin(plan)}
        distance: str | None
        if plan.binary:
            distance = "manhattan"
            warnings.append(f"binary index: each vector is unpacked to {plan.dim} 0/1 floats; Hamming distance has "
                            "no Qdrant equivalent, so 'manhattan' is used, which on 0/1 vectors equals the Hamming "
                            "distance")
        else:
            metric_names = {faiss.METRIC_L2: "euclid", faiss.METRIC_INNER_PRODUCT: "dot"}
            if hasattr(faiss, "METRIC_L1"):
                metric_names[faiss.METRIC_L1] = "manhattan"
            distance = metric_names.get(plan.metric)
            details["metric_type"] = plan.metric
            if distance is None and not self.options.distance:
                raise SourceError(f"{self.path}: the index uses faiss metric_type {plan.metric}, which has no Qdrant "
                                  "equivalent; pass --distance cosine|dot|euclid|manhattan to choose one")
            norms = row_norms(sample)
            if distance == "dot" and len(norms) and np.all(np.abs(norms - 1) < 1e-3):
                warnings.append(f"inner-product index whose sampled vectors ({len(norms)}) all have norm 1: the data "
                                "looks cosine-normalized, so 'cosine' is equivalent to 'dot' here")
            lossy = self._lossy(plan, sample, warnings)
        if self.options.distance:
            want = parse_distance(self.options.distance, self.path)
            if distance and want != distance:
                warnings.append(f"the index uses {distance}; using --distance {want} as asked")
            distance = want
        if meta is not None and len(meta) != plan.ntotal:
            warnings.append(f"{self.options.metadata}: has {len(meta)} entries for {plan.ntotal} vectors; vectors "
                            "without an entry get an empty payload")
        count = self._scope_count(plan) if self.scope else plan.ntotal
        self._info = SourceInfo(kind=self.kind, name=self.path, dim=plan.dim, distance=distance, count=count,
                                warnings=warnings, lossy=lossy, details=details)
        return self._info

    def _lossy(self, plan: _Plan, sample: np.ndarray, warnings: list[str]) -> bool:
        """Add a warning per lossy component, with the expected error where it can be computed."""
        faiss = self._faiss()
        lossy = False
        for vt in plan.transforms:
            name = type(vt).__name__
            if name == "PCAMatrix" and vt.d_out < vt.d_in:
                lossy = True
                eig = faiss.vector_to_array(vt.eigenvalues) if vt.eigenvalues.size() else np.empty(0)
                if len(eig) >= vt.d_in and eig.sum() > 0:
                    frac = float(np.clip(eig[vt.d_out:], 0, None).sum() / np.clip(eig, 0, None).sum())
                    warnings.append(f"PCA reduces {vt.d_in} -> {vt.d_out} dimensions and drops {frac:.1%} of the "
                                    f"training variance: vectors come back in the original space with an expected "
                                    f"relative error of about {math.sqrt(frac):.1%} (of the mean-centered vectors)")
                else:
                    warnings.append(f"PCA reduces {vt.d_in} -> {vt.d_out} dimensions: vectors come back in the "
                                    "original space without the dropped components (lossy)")
            elif vt.d_out < vt.d_in:
                lossy = True
                warnings.append(f"{name} reduces {vt.d_in} -> {vt.d_out} dimensions: vectors come back in the "
                                "original space without the dropped components (lossy; the error cannot be "
                                "measured without the original vectors)")
            elif name == "NormalizationTransform":
                lossy = True
                warnings.append("the index L2-normalizes vectors before storing them: the original norms are lost "
                                "(directions are exact; 'cosine' search is unaffected)")
        core = plan.core
        name = type(core).__name__
        if name in _EXACT or plan.binary:
            return lossy
        d_core = int(core.d)
        sq = _find_sq(faiss, core)
        if sq is not None:
            msg = _sq_error(faiss, sq, sample, plan)
            warnings.append(f"{name}: scalar quantizer {msg}")
            return True
        storage = faiss.downcast_index(core.storage) if hasattr(core, "storage") else None
        code = int(getattr(core, "code_size", 0) or getattr(storage, "code_size", 0) or 0)
        pq = getattr(core, "pq", None) or getattr(storage, "pq", None)
        codec = f"PQ{pq.M}x{pq.nbits}" if pq is not None else name
        size = f"{code} bytes per vector vs {4 * d_core} as float32 ({4 * d_core / code:.0f}x smaller)" if code else ""
        warnings.append(f"{name}: lossy codec {codec}{', ' + size if size else ''}; vectors are codebook "
                        "approximations whose error cannot be measured without the original vectors: check "
                        "search quality with `cortex qdrant compare` after migrating")
        return True

    # -- reading -----------------------------------------------------------------------------------------

    def _ivf_lists(self, plan: _Plan) -> tuple[Any, Any]:
        core = plan.core
        faiss = self._faiss()
        return core, faiss.downcast_InvertedLists(core.invlists)

    def _ivf_ids(self, plan: _Plan) -> Iterator[tuple[int, np.ndarray]]:
        faiss = self._faiss()
        _, il = self._ivf_lists(plan)
        for lst in range(il.nlist):
            size = il.list_size(lst)
            if size:
                ptr = il.get_ids(lst)
                ids = faiss.rev_swig_ptr(ptr, size).astype(np.int64, copy=True)
                il.release_ids(lst, ptr)
                yield lst, ids

    def _flat_piece(self, plan: _Plan, lo: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        vecs = plan.core.reconstruct_n(lo, m)
        return np.arange(lo, lo + m, dtype=np.int64), vecs

    def _ivf_piece(self, plan: _Plan, il: Any, lst: int, size: int, lo: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        faiss = self._faiss()
        core = plan.core
        ptr = il.get_ids(lst)
        try:
            ids = faiss.rev_swig_ptr(ptr, size)[lo:lo + m].astype(np.int64, copy=True)
        finally:
            il.release_ids(lst, ptr)
        cptr = il.get_codes(lst)
        try:
            if plan.mode == "ivf-fastscan":
                pk = plan.packer
                nvec, bsz, cs = int(pk.nvec), int(pk.block_size), int(pk.code_size)
                nblocks = (size + nvec - 1) // nvec
                blocks = faiss.rev_swig_ptr(cptr, nblocks * bsz)
                b0, b1 = lo // nvec, (lo + m + nvec - 1) // nvec
                flat = np.empty(((b1 - b0) * nvec, cs), np.uint8)
                for b in range(b0, b1):
                    blk = np.ascontiguousarray(blocks[b * bsz:(b + 1) * bsz])
                    pk.unpack_all(faiss.swig_ptr(blk), faiss.swig_ptr(flat[(b - b0) * nvec:]))
                codes = flat[lo - b0 * nvec:lo - b0 * nvec + m]
            else:
                cs = int(core.code_size)
                codes = np.array(faiss.rev_swig_ptr(cptr, size * cs)[lo * cs:(lo + m) * cs]).reshape(m, cs)
        finally:
            il.release_codes(lst, cptr)
        if plan.mode == "ivf-flat":
            vecs = codes.view(np.float32)
        elif plan.mode == "ivf-binary":
            vecs = codes
        elif plan.mode == "ivf-fastscan":
            # sa_decode / reconstruct_from_offset of a *loaded* IndexIVFPQFastScan segfault (faiss 1.15):
            # decode with the PQ and add the list centroid for residual encoding.
            vecs = core.pq.decode(np.ascontiguousarray(codes))
            if core.by_residual:
                vecs = vecs + core.quantizer.reconstruct(int(lst))
        else:
            ccs = int(core.coarse_code_size())
            prefix = np.frombuffer(int(lst).to_bytes(8, "little")[:ccs], np.uint8)
            full = np.empty((m, ccs + codes.shape[1]), np.uint8)
            full[:, :ccs] = prefix
            full[:, ccs:] = codes
            vecs = core.sa_decode(full)
        return ids, vecs

    def _read_pieces(self, plan: _Plan, batch_size: int, resume: Any) -> Iterator[tuple[np.ndarray, np.ndarray, Any]]:
        """Yield (ids, float32 vectors in the original space, cursor after) of at most ``batch_size`` rows."""
        if plan.mode == "flat":
            first, end = self.scope["pos"] if self.scope else (0, plan.ntotal)
            start = int(resume["pos"]) if resume else first
            for lo in range(start, end, batch_size):
                m = min(batch_size, end - lo)
                labels, raw = self._flat_piece(plan, lo, m)
                yield self._finish(plan, labels, raw, {"pos": lo + m})
            return
        _, il = self._ivf_lists(plan)
        first, nlist = self.scope["lists"] if self.scope else (0, int(il.nlist))
        lst, off = (int(resume["list"]), int(resume["offset"])) if resume else (first, 0)
        ids_parts: list[np.ndarray] = []
        vec_parts: list[np.ndarray] = []
        filled = 0
        while lst < nlist:
            size = int(il.list_size(lst))
            if off >= size:
                lst, off = lst + 1, 0
                continue
            m = min(batch_size - filled, size - off)
            labels, raw = self._ivf_piece(plan, il, lst, size, off, m)
            ids_parts.append(labels)
            vec_parts.append(raw)
            off += m
            filled += m
            if filled == batch_size:
                yield self._finish(plan, np.concatenate(ids_parts), np.concatenate(vec_parts),
                                   {"list": lst, "offset": off})
                ids_parts, vec_parts, filled = [], [], 0
        if filled:
            yield self._finish(plan, np.concatenate(ids_parts), np.concatenate(vec_parts), {"list": lst, "offset": 0})

    def _finish(self, plan: _Plan, labels: np.ndarray, raw: np.ndarray,
                cursor: Any) -> tuple[np.ndarray, np.ndarray, Any]:
        if plan.binary:
            vecs = np.unpackbits(np.asarray(raw, np.uint8), axis=1, bitorder="little")[:, :plan.dim]
            vecs = vecs.astype(np.float32)
        else:
            vecs = np.asarray(raw, np.float32)
            for vt in reversed(plan.transforms):
                vecs = vt.reverse_transform(np.ascontiguousarray(vecs))
            vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        if plan.id_map is not None:
            pos = np.searchsorted(plan.label_rank, labels) if plan.label_rank is not None else labels
            labels = plan.id_map[pos]
        return labels, vecs, cursor

    def split(self, n: int) -> list[Any]:
        """Position ranges of a flat-read index; ranges of inverted lists of equal total size for IVF."""
        plan = self._plan()
        if plan.mode == "flat":
            return [{"pos": [lo, hi]} for lo, hi in even_ranges(plan.ntotal, n)]
        _, il = self._ivf_lists(plan)
        sizes = np.array([il.list_size(i) for i in range(int(il.nlist))], np.int64)
        cum = np.concatenate([[0], np.cumsum(sizes)])
        cuts = [0, *(int(np.searchsorted(cum, cum[-1] * k / n, side="left")) for k in range(1, n)), len(sizes)]
        cuts = [min(max(c, cuts[i - 1] if i else 0), len(sizes)) for i, c in enumerate(cuts)]
        return [{"lists": [cuts[k], cuts[k + 1]]} for k in range(n)]

    def _scope_count(self, plan: _Plan) -> int:
        if "pos" in self.scope:
            return self.scope["pos"][1] - self.scope["pos"][0]
        _, il = self._ivf_lists(plan)
        return sum(int(il.list_size(i)) for i in range(*self.scope["lists"]))

    def batches(self, batch_size: int, resume: Any = None) -> Iterator[Batch]:
        plan = self._plan()
        meta = self._metadata()
        try:
            for ids, vecs, cursor in self._read_pieces(plan, batch_size, resume):
                payloads = None
                if meta is not None:
                    payloads = [_payload(meta.get(str(i))) for i in ids.tolist()]
                yield Batch(ids=ids, vectors=vecs, payloads=payloads, cursor=cursor)
        except RuntimeError as e:
            raise SourceError(f"{self.path}: reading {' > '.join(plan.chain)} failed ({_faiss_msg(e)})") from e

    # -- native search -----------------------------------------------------------------------------------

    def exhaustive_search(self) -> bool:
        """A flat float index (IndexFlat / IP / L2, optionally in an IDMap) read whole: faiss's search is brute
        force over exactly the vectors :meth:`batches` yields, when all are finite, the ids are unique and
        unsigned, and the distance is the index's own metric (inner product as dot, L2 as euclid)."""
        if self.scope is not None:  # one part of the index (cortex.scale): its search covers all of it
            return False
        if self._brute is None:
            self._brute = self._is_brute_force()
        return self._brute

    def _is_brute_force(self) -> bool:
        plan = self._plan()
        faiss = self._faiss()
        if plan.binary or plan.mode != "flat" or plan.transforms or \
                type(plan.core).__name__ not in ("IndexFlat", "IndexFlatIP", "IndexFlatL2") or \
                any(c.startswith("IndexRefine") for c in plan.chain):
            return False
        own = {faiss.METRIC_INNER_PRODUCT: "dot", faiss.METRIC_L2: "euclid"}.get(plan.metric)
        if own is None or self.info().distance != own:
            return False
        ids = plan.id_map
        if ids is not None and len(ids) and (ids.min() < 0 or len(np.unique(ids)) != len(ids)):
            return False
        step = max(1, (64 << 20) // (4 * max(plan.dim, 1)))  # 64 MB at a time
        for lo in range(0, plan.ntotal, step):
            with np.errstate(over="ignore", invalid="ignore"):
                if not np.isfinite(plan.core.reconstruct_n(lo, min(step, plan.ntotal - lo)).sum(axis=1)).all():
                    return False
        return True

    def sample_vectors(self, n: int, seed: int) -> np.ndarray | None:
        """``n`` distinct vectors by random access, uniformly (a brute-force index only: every vector valid)."""
        if not self.exhaustive_search():
            return None
        plan = self._plan()
        pos = np.random.default_rng(seed).choice(plan.ntotal, min(n, plan.ntotal), replace=False)
        return np.stack([plan.core.reconstruct(int(i)) for i in pos]).astype(np.float32, copy=False)

    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[Any]], np.ndarray]:
        """faiss's own search, with nprobe >= min(nlist, 32) and efSearch >= max(64, 2k).

        Returned ids are the ids :meth:`batches` yields (custom ids for IDMap, stored ids for IVF,
        positions otherwise); scores follow Qdrant's convention (euclid: L2 distance, not squared).
        """
        faiss = self._faiss()
        plan = self._plan()
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        tuned: dict[str, int] = {}
        _tune(faiss, plan.root, plan.binary, k, tuned)
        if plan.binary:
            qb = np.packbits((q > 0.5).astype(np.uint8), axis=1, bitorder="little")
            dist, labels = plan.root.search(qb, k)
        elif plan.label_rank is not None:
            qq = q
            for vt in plan.transforms[:plan.n_outer]:
                qq = vt.apply(np.ascontiguousarray(qq))
            dist, labels = plan.idmap_inner.search(np.ascontiguousarray(qq, dtype=np.float32), k)
            ok = labels >= 0
            labels[ok] = plan.id_map[np.searchsorted(plan.label_rank, labels[ok])]
        else:
            dist, labels = plan.root.search(q, k)
        scores = np.asarray(dist, np.float32)
        if not plan.binary and plan.metric == faiss.METRIC_L2:
            scores = np.sqrt(np.clip(scores, 0, None))
        self.search_params = tuned
        ids = [[int(v) for v in row if v != -1] for row in labels]
        return ids, scores

    def close(self) -> None:
        self._p = None
        self._meta = None


def _id_origin(plan: _Plan) -> str:
    """Where the ids batches() and search() return come from."""
    if plan.id_map is not None:
        how = "by label order (repaired after remove_ids)" if plan.label_rank is not None else "id_map[label]"
        return f"custom ids from the IDMap ({how})"
    if plan.mode != "flat":
        return "ids stored in the IVF lists (add_with_ids ids, else sequential)"
    return "positions 0..ntotal-1"


def _describe(core: Any) -> str:
    name = type(core).__name__
    parts = []
    for attr in ("nlist", "M", "nbits"):
        if attr in ("M", "nbits") and hasattr(core, "pq"):
            parts.append(f"{attr}={getattr(core.pq, attr)}")
        elif attr == "nlist" and hasattr(core, "nlist"):
            parts.append(f"nlist={core.nlist}")
    return f"{name}({', '.join(parts)})" if parts else name


def _find_sq(faiss: Any, core: Any) -> Any:
    if hasattr(core, "sq"):
        return core.sq
    if hasattr(core, "storage"):
        st = faiss.downcast_index(core.storage)
        if hasattr(st, "sq"):
            return st.sq
    return None


def _sq_error(faiss: Any, sq: Any, sample: np.ndarray, plan: _Plan) -> str:
    """Describe an SQ codec with its expected mean relative error (uniform quantization noise)."""
    SQ = faiss.ScalarQuantizer
    qt = int(sq.qtype)
    levels = {SQ.QT_8bit: 256, SQ.QT_8bit_uniform: 256, SQ.QT_4bit: 16, SQ.QT_4bit_uniform: 16}
    if hasattr(SQ, "QT_6bit"):
        levels[SQ.QT_6bit] = 64
    names = {v: k[3:] for k, v in vars(SQ).items() if k.startswith("QT_") and isinstance(v, int)}
    qname = names.get(qt, str(qt))
    if qt in levels:
        d = int(sq.d)
        tr = faiss.vector_to_array(sq.trained)
        uniform = qt in (SQ.QT_8bit_uniform, SQ.QT_4bit_uniform)
        vdiff = np.full(d, tr[1]) if uniform and len(tr) >= 2 else tr[d:2 * d] if len(tr) >= 2 * d else None
        if vdiff is not None and len(sample):
            rms = float(np.sqrt(np.sum((vdiff / levels[qt]) ** 2 / 12)))
            norm = float(row_norms(sample).mean()) or 1.0
            return (f"{qname} ({levels[qt]} levels per dimension): expected mean relative error about "
                    f"{rms / norm:.2%} (quantization step from the trained ranges, over {len(sample)} sampled "
                    "vectors)")
        return f"{qname}: lossy ({levels[qt]} levels per dimension)"
    if qt == getattr(SQ, "QT_fp16", -1):
        return "fp16: float16 rounding, expected mean relative error about 0.02%"
    if qt == getattr(SQ, "QT_bf16", -1):
        return "bf16: bfloat16 rounding, expected mean relative error about 0.2%"
    if qt in (getattr(SQ, "QT_8bit_direct", -1), getattr(SQ, "QT_8bit_direct_signed", -1)):
        return f"{qname}: values stored as 8-bit integers; exact when the original vectors held integers"
    return f"{qname}: lossy"


def _tune(faiss: Any, root: Any, binary: bool, k: int, out: dict[str, int]) -> None:
    """Raise nprobe / efSearch on every IVF / HNSW level of the index to sensible search values."""
    down = faiss.downcast_IndexBinary if binary else faiss.downcast_index
    stack = [root]
    seen = 0
    while stack and seen < 16:
        seen += 1
        obj = down(stack.pop())
        if hasattr(obj, "nprobe") and hasattr(obj, "nlist"):
            obj.nprobe = max(int(obj.nprobe), min(int(obj.nlist), 32))
            out["nprobe"] = int(obj.nprobe)
        if hasattr(obj, "hnsw"):
            obj.hnsw.efSearch = max(int(obj.hnsw.efSearch), 2 * k, 64)
            out["efSearch"] = int(obj.hnsw.efSearch)
        for attr in ("index", "base_index"):
            sub = getattr(obj, attr, None)
            if sub is not None and not isinstance(sub, int):
                stack.append(sub)


def _payload(v: Any) -> dict[str, Any]:
    if v is None:
        return {}
    return v if isinstance(v, dict) else {"value": v}
