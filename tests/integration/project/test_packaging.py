"""The three distributions build (sdist and wheel) from a clone and pass ``twine check``.

Built with ``--no-isolation`` from the installed setuptools, so the test needs no network.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

DISTRIBUTIONS = {  # each wheel's name and files it must carry beside the Python modules
    ".": (
        "rag_rerank",
        ["rag_rerank/server/static/index.html", "rag_rerank/core/cpu_attention.c"],
    ),
    "integrations/langchain": ("langchain_rag_rerank", ["langchain_rag_rerank/py.typed"]),
    "integrations/llama_index": (
        "llama_index_postprocessor_rag_rerank",
        ["llama_index/postprocessor/rag_rerank/base.py"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("folder", list(DISTRIBUTIONS))
def test_distribution_builds_and_passes_twine_check(folder: str, tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ and *.egg-info/ beside the sources.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".*")
    if folder == ".":
        source.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, source / name)
        shutil.copytree(ROOT / "rag_rerank", source / "rag_rerank", ignore=ignore)
    else:
        shutil.copytree(ROOT / folder, source, ignore=ignore)
    out = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation", "--outdir",
         str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    prefix, members = DISTRIBUTIONS[folder]
    wheels = list(out.glob(f"{prefix}-*.whl"))
    sdists = list(out.glob(f"{prefix}-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    assert set(members) <= set(zipfile.ZipFile(wheels[0]).namelist())
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2
