"""Command-line checks that answer before anything heavy loads: each bad flag or argument is a
usage error naming it, found without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag_rerank.cli.options import cuda_missing

_RUN = """
import json, sys
from rag_rerank.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


def run_cli(*argv: str, env: dict[str, str] | None = None) -> tuple[int, bool, str]:
    """``rag-rerank ARGV`` in a fresh interpreter: exit code, whether torch was imported, stderr."""
    done = subprocess.run(
        [sys.executable, "-c", _RUN, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome["code"], outcome["torch"], done.stderr


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["score", "-q", "q", "d", "--calibration", "missing.json"],
            {},
            "argument --calibration: no such file: missing.json",
        ),
        (
            ["score", "-q", "q", "d", "--device", "cuda"],
            {"CUDA_VISIBLE_DEVICES": ""},
            "argument --device: cuda asked for, but CUDA_VISIBLE_DEVICES='' hides every GPU",
        ),
        (
            ["train", "c.jsonl", "--out", "o", "--device", "cuda:1"],
            {"CUDA_VISIBLE_DEVICES": "-1"},
            "argument --device: cuda:1 asked for, but CUDA_VISIBLE_DEVICES='-1' hides every GPU",
        ),
        (
            ["index", "no/such/folder", "--db", "db"],
            {},
            "argument PATH: no such file or folder: no/such/folder",
        ),
    ],
)
def test_bad_flags_fail_before_torch_loads(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, torch_loaded, err = run_cli(*argv, env=env)
    assert code == 2 and message in err, err
    assert not torch_loaded


def test_cuda_missing_agrees_with_torch() -> None:
    import torch

    if torch.cuda.is_available():
        assert cuda_missing() is None
    else:
        assert cuda_missing() is not None
