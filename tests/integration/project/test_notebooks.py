"""Every notebook runs top to bottom offline with a tiny test model, and is stored without outputs.

Notebooks 02 and 03 need the LangChain and LlamaIndex integration packages (``integrations/``); the
kernel finds them through PYTHONPATH, set here from the repository layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[3]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = [
    "01_quickstart.ipynb",
    "02_langchain_chroma.ipynb",
    "03_llamaindex_chroma.ipynb",
    "04_calibration.ipynb",
]


def test_the_notebooks_are_there() -> None:
    assert [p.name for p in NOTEBOOKS] == NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs"
    sources = "\n".join(cell.source for cell in notebook.cells)
    assert 'os.environ.get("RAG_RERANK_MODEL"' in sources


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(
    path: Path, xlmr_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [ROOT, ROOT / "integrations" / "langchain", ROOT / "integrations" / "llama_index"]
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([*map(str, paths), *([existing] if existing else [])])
    )
    monkeypatch.setenv("RAG_RERANK_MODEL", xlmr_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=240,
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working folder
    )
    client.execute()  # raises CellExecutionError, naming the cell, when any cell fails
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # Progress bars render as widgets (ipywidgets, the notebooks extra), not as a red
    # "IProgress not found" warning; third-party "Loading weights" bars stay off.
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "IProgress" not in streams and "Loading weights" not in streams
    if path.name == "01_quickstart.ipynb":
        html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
        assert html and 'class="rr-view"' in html[0] and 'class="rr-candidates"' in html[0]
    if path.name == "04_calibration.ipynb":
        images = [o for o in outputs if "image/png" in o.get("data", {})]
        text = "".join(o.get("text", "") for o in outputs)
        assert len(images) == 2  # the reliability diagram and the threshold curves
        assert "ECE" in text and "kept/query" in text and "recommended threshold" in text
