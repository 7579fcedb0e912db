"""Examples run twice give the same answer: the integration READMEs' examples run offline (the
model from RAG_RERANK_MODEL) and do not add their documents to the persisted store again, and
notebook 04 writes nothing where it is run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
INTEGRATIONS = [ROOT / "integrations" / "langchain", ROOT / "integrations" / "llama_index"]


def _env(xlmr_dir: str) -> dict[str, str]:
    paths = [str(ROOT), *map(str, INTEGRATIONS), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "RAG_RERANK_MODEL": xlmr_dir,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


@pytest.mark.slow  # each example runs twice in a fresh Python process
@pytest.mark.parametrize("package", INTEGRATIONS, ids=lambda p: p.name)
def test_integration_readme_example_twice(package: Path, xlmr_dir: str, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "warranty.txt").write_text(
        "The warranty covers parts and labour for two years.", "utf-8"
    )
    (tmp_path / "docs" / "returns.txt").write_text("Returns are free within 30 days.", "utf-8")
    code = re.search(r"```python\n(.*?)```", (package / "README.md").read_text("utf-8"), re.S)
    assert code is not None and "RAG_RERANK_MODEL" in code.group(1)
    script = tmp_path / "example.py"
    script.write_text(code.group(1), "utf-8")
    runs = [
        subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=_env(xlmr_dir),
        )
        for _ in range(2)
    ]
    for done in runs:
        assert done.returncode == 0, done.stderr[-3000:]
    assert runs[0].stdout.strip() and runs[1].stdout == runs[0].stdout  # no duplicated passages


@pytest.mark.slow  # executes the notebook in a kernel
def test_calibration_notebook_writes_into_a_temporary_folder(
    xlmr_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for name, value in _env(xlmr_dir).items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(ROOT / "notebooks" / "04_calibration.ipynb", as_version=4)
    where = tmp_path / "where-it-runs"
    where.mkdir()
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=240, resources={"metadata": {"path": str(where)}}
    )
    client.execute()
    assert list(where.iterdir()) == []
    text = "".join(
        o.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
    )
    out = Path(re.search(r"writing to (\S+)", text).group(1))  # type: ignore[union-attr]
    assert {p.name for p in out.iterdir()} == {
        "calibration.json",
        "reliability.png",
        "thresholds.png",
    }
