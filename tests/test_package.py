"""The distribution (``cortex-qdrant``): sdist and wheel build, and the wheel alone runs the README's first command.

The wheel is built from the sdist (as ``python -m build`` does), so a file missing from either fails here.  It is
installed into a fresh venv without its dependencies, which come from this test's environment through a ``.pth``
line (so the test needs no network); ``cortex`` itself must come from the wheel, not from this checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_distribution_name_is_not_the_unrelated_cortex_on_pypi():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "cortex-qdrant"  # `pip install cortex` is another project ("serverless computing")
    assert meta["scripts"] == {"cortex": "cortex.cli:main"}
    assert any(d.startswith("zstandard") for d in meta["dependencies"])


def test_wheel_built_from_the_sdist_runs_migrate_and_verify_of_the_example(tmp_path):
    src = tmp_path / "src"  # build from a clean copy of the tracked files, as CI's clone would
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for f in filter(None, files):
        rel = f.decode()
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
                   capture_output=True, check=True, text=True)
    (wheel,) = dist.glob("cortex_qdrant-*.whl")
    (sdist,) = dist.glob("cortex_qdrant-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    modules = {p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src" / "cortex").rglob("*.py")}
    assert modules <= set(names), sorted(modules - set(names))
    (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "cortex = cortex.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # dependencies only
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("QDRANT_")}
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, env=env)
    shutil.copytree(ROOT / "examples", tmp_path / "work" / "examples")
    work = tmp_path / "work"
    where = subprocess.run([py, "-c", "import cortex; print(cortex.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site)), where  # the wheel's cortex, not this checkout's
    cortex = [str(py), "-m", "cortex"]
    m = subprocess.run([*cortex, "qdrant", "migrate", "--source", "examples/code_chunks", "--target", "code_chunks",
                        "--json"], cwd=work, env=env, capture_output=True, text=True)
    assert m.returncode == 0, m.stderr
    assert json.loads(m.stdout)["written"] == 1_971
    v = subprocess.run([*cortex, "qdrant", "verify", "--collection", "code_chunks", "--source", "examples/code_chunks",
                        "--full", "--json"], cwd=work, env=env, capture_output=True, text=True)
    assert v.returncode == 0 and json.loads(v.stdout)["ok"], v.stderr
    assert sdist.stat().st_size > 0
