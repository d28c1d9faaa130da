"""A FAISS index to a cutover-ready Qdrant collection with a plan, against the engine alone (same run).

    python bench/bench_plan.py [--n 200000] [--dim 768] [--sample 20000] [--quick] [--data DIR] [--plan-1m]

Data: ``--n`` embedding-like unit vectors (a few hundred Gaussian clusters in a low-rank subspace plus
noise, bench_data.embedding_chunks) in a FAISS IndexIDMap2(Flat, inner product) file.

* Baseline: the engine alone (qdrant_edge, no Cortex) loads the same vectors with indexing deferred and
  builds its HNSW index with Qdrant's defaults (m 16, ef_construct 100, float32 in RAM).
* Cortex: ``plan`` -> ``migrate --config plan.yaml`` -> ``verify --full`` -> ``compare --config plan.yaml
  --min-recall 0.95``, each a ``python -m cortex`` process; total wall time.

Prints the ratio Cortex / engine (goal <= 0.5) and the plan's predicted RAM, disk and migrate time
against what the migrated collection then measures (goal: within 25%). RAM is measured the way the
plan measures it: the allocated bytes of the components Qdrant keeps resident under the config plus
the anonymous memory a fresh process adds opening the collection and querying it (which holds the
always_ram quantized copy: counted once). ``--plan-1m`` also times ``plan`` on
1M x dim (the goal: under 5 minutes); without it that time is projected from this run's read rate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).parent), str(ROOT / "src")]
from bench_data import embedding_chunks  # noqa: E402


def cpu(who: int) -> float:
    import resource

    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def write_faiss(path: Path, n: int, dim: int) -> None:
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    lo = 0
    for x in embedding_chunks(n, dim, seed=0):
        index.add_with_ids(x, np.arange(lo, lo + len(x), dtype=np.int64))
        lo += len(x)
    faiss.write_index(index, str(path))


def engine_alone(index_path: Path, where: Path, batch: int = 500) -> dict:
    """qdrant_edge by itself: load every vector (indexing deferred), then build the index with the defaults."""
    import faiss
    import qdrant_edge as q

    index = faiss.read_index(str(index_path))
    n, dim = index.ntotal, index.d
    ids = faiss.vector_to_array(index.id_map)
    xb = faiss.vector_to_array(faiss.downcast_index(index.index).codes).view(np.float32).reshape(n, dim)
    shutil.rmtree(where, ignore_errors=True)
    import resource

    t0, c0 = time.perf_counter(), cpu(resource.RUSAGE_SELF)
    params = q.EdgeVectorParams(size=dim, distance=q.Distance.Dot)
    shard = q.EdgeShard.create(str(where), q.EdgeConfig(vectors=params,
                                                       optimizers=q.EdgeOptimizersConfig(indexing_threshold=0)))
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        flat = array("f")
        flat.frombytes(np.ascontiguousarray(xb[lo:hi]).tobytes())
        shard.update(q.UpdateOperation.upsert_points([q.Point(int(ids[lo + k]), flat[k * dim:(k + 1) * dim], None)
                                                      for k in range(hi - lo)]))
    shard.flush()
    load = time.perf_counter() - t0
    shard.close()
    shard = q.EdgeShard.load(str(where), q.EdgeConfig(vectors=params,
                                                      optimizers=q.EdgeOptimizersConfig(indexing_threshold=10_000)))
    shard.optimize()
    shard.flush()
    total = time.perf_counter() - t0
    shard.close()
    return {"load_seconds": round(load, 1), "build_seconds": round(total - load, 1), "seconds": round(total, 1),
            "cpu_seconds": round(cpu(resource.RUSAGE_SELF) - c0, 1)}


CPU: dict[str, float] = {}  # CPU seconds (user + system, every thread) of each cortex command


ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def compiled_like_an_install() -> None:
    """Byte-compile the sources once, as ``pip install`` does (next to them, in ``__pycache__``), and let the
    commands read the compiled files: a shell that sets PYTHONDONTWRITEBYTECODE (this development one does) would
    otherwise recompile every module of ``src`` each command. No PYTHONPYCACHEPREFIX: Python then looks for every
    module's compiled file there, so the first command would also recompile numpy, pydantic, typer... (~1.8 s
    measured), which an install has compiled already."""
    import compileall

    ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(ROOT / "src"), quiet=1)


def cortex(*args: str, cwd: Path) -> tuple[float, dict, int]:
    import resource

    env = ENV
    t0, c0 = time.perf_counter(), cpu(resource.RUSAGE_CHILDREN)
    p = subprocess.run([sys.executable, "-m", "cortex", "qdrant", *args, "--json"], cwd=cwd, env=env,
                       capture_output=True, text=True)
    dt = time.perf_counter() - t0
    CPU[args[0]] = round(cpu(resource.RUSAGE_CHILDREN) - c0, 1)
    try:
        out = json.loads(p.stdout)
    except ValueError:
        out = {}
    if p.returncode not in (0, 1):
        sys.exit(f"cortex {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return round(dt, 1), out, p.returncode


# Not the plan's heap probe (cortex.plan.experiment.heap_in_fresh_process): that one forks from a process that has
# already imported the engine, and on the migrated 200k collection it reads ~17 MB less anonymous memory than this
# new interpreter does (176 against 193 MB), so the two figures are kept apart.
_PROBE = """
import sys
import numpy as np
from cortex.collection_config import load_config
from cortex.plan.experiment import rss
from cortex.targets.edge import EdgeTarget
storage, name, plan_yaml, qfile = sys.argv[1:5]
cfg = load_config(plan_yaml).collection()
queries = np.load(qfile)
a0, f0 = rss()
t = EdgeTarget(storage)
t.count(name)
for i in range(len(queries)):
    t.search(name, queries[i:i + 1], 10, params=cfg.search)
a1, f1 = rss()
print(max(0, a1 - a0), max(0, f1 - f0))
"""


def measured_footprint(storage: Path, name: str, plan_yaml: Path, queries: np.ndarray) -> dict:
    """Disk (allocated) and RAM of the migrated collection, measured as the plan measures its sample: the
    resident components' files plus the memory a fresh process adds opening the collection and querying it (the
    always_ram quantized copy is in that memory, so it is not counted twice)."""
    from cortex.collection_config import load_config
    from cortex.plan.estimate import in_heap, resident
    from cortex.plan.experiment import disk_components

    cfg = load_config(plan_yaml).collection()
    disk = disk_components(storage / name)
    qfile = storage.parent / "probe_queries.npy"
    np.save(qfile, queries)
    p = subprocess.run([sys.executable, "-c", _PROBE, str(storage), name, str(plan_yaml), str(qfile)], env=ENV,
                       capture_output=True, text=True, check=True)
    anon, file = (int(v) for v in p.stdout.split())
    ram = sum(disk[c] for c in resident(cfg) - in_heap(cfg)) + anon
    return {"disk_bytes": sum(disk.values()), "ram_bytes": ram, "components": disk,
            "rss_anon_bytes": anon, "rss_file_bytes": file}


def pct(pred: float | None, meas: float | None) -> str:
    if not pred or not meas:
        return "-"
    return f"{(pred - meas) / meas:+.0%}"


def gb(b: float | None) -> str:
    return f"{b / 2**30:.2f} GiB" if b else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--sample", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="plan --quick (three candidates)")
    ap.add_argument("--optimize-for", default=None, help="plan --optimize-for (default: plan's own default)")
    ap.add_argument("--data", help="keep the generated data here (reused when present)")
    ap.add_argument("--plan-1m", action="store_true", help="also time plan on 1M x dim")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    data = Path(args.data) if args.data else tmp
    data.mkdir(parents=True, exist_ok=True)
    src = data / f"emb{args.n}x{args.dim}.index"
    if not src.exists():
        t = time.perf_counter()
        write_faiss(src, args.n, args.dim)
        print(f"data: {src} ({args.n:,} x {args.dim}) written in {time.perf_counter() - t:.0f} s", flush=True)
    try:
        print("engine alone (qdrant_edge, defaults) ...", flush=True)
        eng = engine_alone(src, tmp / "engine")
        shutil.rmtree(tmp / "engine", ignore_errors=True)
        print(f"  {eng}", flush=True)

        work = tmp / "cortex"
        work.mkdir()
        compiled_like_an_install()
        store = work / "qdrant_storage"
        quick = ["--quick"] if args.quick else []
        if args.optimize_for:
            quick += ["--optimize-for", args.optimize_for]
        print("cortex plan ...", flush=True)
        t_plan, plan, rc = cortex("plan", "--source", str(src), "--sample", str(args.sample), *quick,
                                  "--collection", "emb", "--output", "plan.yaml", "--report", "plan.html", cwd=work)
        if rc != 0:
            sys.exit(f"plan found no config meeting the recall goal: {plan.get('reason')}")
        print(f"  {t_plan} s: {plan['reason']}", flush=True)
        print("cortex migrate --config ...", flush=True)
        t_mig, mig, _ = cortex("migrate", "--source", str(src), "--target", "emb", "--config", "plan.yaml",
                               "--path", str(store), cwd=work)
        print(f"  {t_mig} s (load {mig.get('seconds')} s total, index {mig.get('index_seconds')} s)", flush=True)
        print("cortex verify --full ...", flush=True)
        t_ver, ver, rc_v = cortex("verify", "--collection", "emb", "--source", str(src), "--full",
                                  "--path", str(store), cwd=work)
        print("cortex compare --config ...", flush=True)
        t_cmp, cmp_, rc_c = cortex("compare", "--source", str(src), "--collection", "emb", "--config", "plan.yaml",
                                   "--min-recall", "0.95", "--path", str(store), cwd=work)
        total = t_plan + t_mig + t_ver + t_cmp
        chain_cpu = dict(CPU)
        rng = np.random.default_rng(5)
        import faiss

        index = faiss.read_index(str(src))
        qs = np.stack([index.reconstruct(int(i)) for i in rng.choice(args.n, 200, replace=False)])
        del index
        meas = measured_footprint(store, "emb", work / "plan.yaml", qs)
        chosen = plan["chosen"]["candidate"]
        pred = plan["estimates"][chosen]
        pred_t = plan["time"]["chosen"]
        plan_1m = None
        if args.plan_1m:
            big = data / f"emb1000000x{args.dim}.index"
            if not big.exists():
                write_faiss(big, 1_000_000, args.dim)
            plan_1m, _, _ = cortex("plan", "--source", str(big), "--sample", str(args.sample), *quick, cwd=work)
        proj_1m = round(plan["phases"]["inventory"] * 1_000_000 / args.n + plan["seconds"]
                        - plan["phases"]["inventory"], 1)

        print()
        print(f"{args.n:,} x {args.dim} embedding-like vectors, FAISS IndexIDMap2(Flat IP); plan --sample "
              f"{args.sample:,}{' --quick' if args.quick else ''}; chosen: {chosen} {plan['chosen']['search']}")
        print(f"  engine alone (load + index build with Qdrant's defaults): {eng['seconds']:8.1f} s "
              f"(load {eng['load_seconds']} s, build {eng['build_seconds']} s; {eng['cpu_seconds']} CPU s)")
        print(f"  cortex plan                                             : {t_plan:8.1f} s "
              f"({', '.join(f'{k} {v} s' for k, v in plan['phases'].items())})")
        print(f"  cortex migrate --config                                 : {t_mig:8.1f} s "
              f"(index build {mig.get('index_seconds')} s)")
        print(f"  cortex verify --full                                    : {t_ver:8.1f} s "
              f"({'OK' if rc_v == 0 else 'FAILED'})")
        print(f"  cortex compare --config --min-recall 0.95               : {t_cmp:8.1f} s "
              f"(recall@10 {cmp_['qdrant']['recall']:.4f}, {'PASSED' if rc_c == 0 else 'FAILED'})")
        print(f"  cortex total                                            : {total:8.1f} s  "
              f"= {total / eng['seconds']:.2f}x the engine alone (goal <= 0.5x)")
        cpu_total = sum(chain_cpu.values())
        print(f"  CPU seconds (less sensitive to the host's other jobs)    : cortex {cpu_total:.1f} "
              f"({', '.join(f'{k} {v}' for k, v in chain_cpu.items())}) vs engine "
              f"{eng['cpu_seconds']} = {cpu_total / max(eng['cpu_seconds'], 1e-9):.2f}x")
        print(f"  predicted vs measured: RAM {gb(pred['ram_bytes'])} vs {gb(meas['ram_bytes'])} "
              f"({pct(pred['ram_bytes'], meas['ram_bytes'])}); disk {gb(pred['disk_bytes'])} vs "
              f"{gb(meas['disk_bytes'])} ({pct(pred['disk_bytes'], meas['disk_bytes'])}); migrate time "
              f"{pred_t['total_seconds']} s vs {mig.get('seconds')} s "
              f"({pct(pred_t['total_seconds'], mig.get('seconds'))}); index build {pred_t['build_seconds']} s vs "
              f"{mig.get('index_seconds')} s ({pct(pred_t['build_seconds'], mig.get('index_seconds'))})")
        print("  plan's trials (points: load / build / whole trial s): " + "; ".join(
            f"{t['name']} {t['points']:,}: {t['load_seconds']:.1f} / {t['build_seconds']:.1f} / {t['seconds']:.1f}"
            for t in plan["trials"]))
        print(f"  expected recall (plan) {plan['chosen']['projected_recall']} vs compare "
              f"{cmp_['qdrant']['recall']:.4f}")
        if plan_1m is not None:
            print(f"  plan on 1,000,000 x {args.dim}: {plan_1m} s (goal < 300 s)")
        print(f"  plan on 1,000,000 x {args.dim} (projected from this run's read rate): {proj_1m} s (goal < 300 s)")
        if args.out:
            Path(args.out).write_text(json.dumps({
                "n": args.n, "dim": args.dim, "sample": args.sample, "quick": args.quick, "engine": eng,
                "cortex": {"plan": t_plan, "migrate": t_mig, "verify": t_ver, "compare": t_cmp, "total": total},
                "cpu_seconds": chain_cpu, "load_average": os.getloadavg(),
                "ratio": round(total / eng["seconds"], 3), "chosen": plan["chosen"], "predicted": {
                    "ram_bytes": pred["ram_bytes"], "disk_bytes": pred["disk_bytes"], "time": pred_t},
                "measured": {**meas, "migrate_seconds": mig.get("seconds"), "index_seconds": mig.get("index_seconds")},
                "recall": cmp_["qdrant"]["recall"], "verify_ok": rc_v == 0, "plan_phases": plan["phases"],
                "plan_trials": [{k: t[k] for k in ("name", "points", "load_seconds", "build_seconds",
                                                   "build_cpu_seconds", "seconds")} for t in plan["trials"]],
                "plan_miss_growth": plan["miss_growth"],
                "plan_1m_seconds": plan_1m, "plan_1m_projected_seconds": proj_1m}, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
