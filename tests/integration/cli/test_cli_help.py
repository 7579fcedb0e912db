"""``rag-rerank --help`` and each command's ``--help`` stay light: no torch, transformers,
chromadb or fastapi is imported to build the parser (those load when a command runs).

Checked on the modules a fresh interpreter imports (``python -X importtime``), never on time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag_rerank.api import RerankerOptions
from rag_rerank.cli import build_parser

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "transformers", "chromadb", "fastapi")
COMMANDS = ("score", "index", "ask", "rerank", "demo", "eval", "serve", "batch")


def imported_modules(*argv: str) -> tuple[set[str], str]:
    """The top-level packages ``python -m rag_rerank.cli ARGV`` imports, and its stdout."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rag_rerank.cli", *argv],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    modules = set()
    for line in done.stderr.splitlines():
        # "import time:       self [us] |    cumulative | imported package"
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            modules.add(name.split(".")[0])
    assert "rag_rerank" in modules  # the report was read
    return modules, done.stdout


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_imports_nothing_heavy(command: str) -> None:
    modules, out = imported_modules(*([command] if command else []), "--help")
    assert out.startswith("usage: rag-rerank")
    assert sorted(modules & set(HEAVY)) == []


def _required(command: str) -> list[str]:
    """The positional arguments and required flags of ``command``."""
    return {
        "index": [".", "--db", "x"],  # a path that exists
        "ask": ["q", "--db", "x"],
        "rerank": ["-q", "q"],
        "eval": ["d"],
        "batch": ["in.jsonl", "out.jsonl"],
    }.get(command, [])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_reranker_option_is_a_flag_of_every_command(command: str) -> None:
    args = build_parser().parse_args([command, *_required(command)])
    for name in RerankerOptions.names():
        assert hasattr(args, name), (command, name)


@pytest.mark.parametrize("command", ["ask", "demo", "eval"])
@pytest.mark.parametrize("spelling", ["-k", "--k"])
def test_k_has_both_spellings(command: str, spelling: str) -> None:
    args = build_parser().parse_args([command, *_required(command), spelling, "7"])
    assert args.k == 7


def test_bad_model_flag_value_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["score", "--max-length", "8"])
    assert exit_info.value.code == 2
    assert "argument --max-length: must be at least 16 tokens" in capsys.readouterr().err
