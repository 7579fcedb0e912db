"""JSON Lines readers: lines end at ``\\n`` only (U+2028 and U+0085 are valid inside a JSON
string), and a lone surrogate is refused as the file is read, naming its line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag_rerank.cli.rerank import read_candidates
from rag_rerank.errors import CalibrationError, InvalidInputError
from rag_rerank.evaluation import load_labels
from rag_rerank.training import load_passages

ODD = "line\u2028separator, next\u0085line"  # splitlines() would cut here; JSON allows them raw


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_separators_inside_strings_stay_in_their_line(tmp_path: Path) -> None:
    labels = _write(tmp_path / "labels.jsonl", [{"query": ODD, "document": ODD, "label": 1}])
    assert [(p.query, p.document) for p in load_labels(labels)] == [(ODD, ODD)]
    corpus = _write(tmp_path / "corpus.jsonl", [{"text": ODD}, {"text": "plain"}])
    assert [p.text for p in load_passages(corpus)] == [ODD, "plain"]
    jsonl = json.dumps({"text": ODD}, ensure_ascii=False) + "\r\n\n"
    assert [c.text for c in read_candidates(jsonl, jsonl=True)] == [ODD]
    assert [c.text for c in read_candidates(ODD + "\r\n" + ODD, jsonl=False)] == [ODD, ODD]


SURROGATE = '{"query": "q", "document": "bad \\ud800 text", "label": 0}'


def test_a_surrogate_names_its_line(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"query": "q", "document": "d", "label": 1}\n' + SURROGATE + "\n")
    with pytest.raises(CalibrationError, match=r"line 2: document: contains a lone surrogate"):
        load_labels(labels)
    with pytest.raises(InvalidInputError, match=r"<stdin>, line 1: contains a lone surrogate"):
        read_candidates('"bad \\udc00"', jsonl=True)


def test_calibrate_refuses_a_surrogate_before_the_model_loads(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text(SURROGATE + "\n")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):  # passes the folder check
        (tmp_path / name).write_text("{}")
    run = (
        "import sys; from rag_rerank.cli import main; "
        f"code = main(['calibrate', {str(labels)!r}, '--model', {str(tmp_path)!r}]); "
        "print(code, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["1", "False"], done.stderr
    assert f"{labels}, line 1: document: contains a lone surrogate" in done.stderr
