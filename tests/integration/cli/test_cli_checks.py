"""Command-line checks that answer before anything heavy loads: each bad flag or argument is a
usage error naming it, found without importing torch."""

from __future__ import annotations

import argparse
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


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_serve_refuses_a_port_outside_0_to_65535(port: str) -> None:
    code, torch_loaded, err = run_cli("serve", "--port", port)
    assert code == 2 and f"argument --port: must be in 0-65535, got {port}" in err, err
    assert not torch_loaded


def _serve(bert_dir: str, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("RAG_RERANK_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "rag_rerank.cli", "serve", "--model", bert_dir,
         "--port", str(port), "--log-level", "info"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.mark.slow  # two fresh Python processes that import torch
def test_serve_logs_the_address_it_bound_and_only_once_bound(bert_dir: str) -> None:
    import re
    import signal
    import socket

    import httpx

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = _serve(bert_dir, taken.getsockname()[1])
        output = process.communicate(timeout=120)[0]
    assert process.returncode != 0, output
    assert "listening at" not in output and "address already in use" in output.lower()

    process = _serve(bert_dir, 0)  # any free port: the log says which
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # bounded: the process ends or prints the line
            lines.append(line)
            found = re.search(r"listening at http://127\.0\.0\.1:(\d+)", line)
            if found:
                break
        else:
            pytest.fail(f"no 'listening at' line; exit {process.wait(timeout=10)}")
        port = int(found.group(1))
        assert port != 0
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        process.send_signal(signal.SIGTERM)
        lines += process.communicate(timeout=60)[0].splitlines()
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # One log format, uvicorn's lines included ("Uvicorn running on ..." was "INFO:     ...").
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: "
    assert [line for line in lines if line.strip() and not re.match(stamp, line)] == []
    assert any("uvicorn" in line for line in lines)


# -- small conventions ---------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["rag_rerank", "rag_rerank.cli"])
def test_version_from_either_module(module: str) -> None:
    from rag_rerank import __version__

    done = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"rag-rerank {__version__}\n"


def test_python_dash_m_rag_rerank_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rag_rerank", "score", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: rag-rerank score"), done.stderr


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["rerank", "-q", "q", "--tresh", "0.3"], "--threshold"),
        (["score", "-q", "q", "--jsno"], "--json"),
        (["serve", "--max-documentz=3"], "--max-documents"),
    ],
)
def test_a_misspelt_flag_suggests_the_right_one(
    argv: list[str], meant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from rag_rerank.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"rag-rerank {argv[0]}: error: unrecognized arguments" in err
    assert err.rstrip().endswith(f"(did you mean {meant}?)")


def test_help_says_off_not_none() -> None:
    from rag_rerank.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        assert "None" not in command.format_help(), name
    args = parser.parse_args(["score", "--cache-ttl", "off", "--cache", "off"])
    assert (args.cache_ttl, args.cache) == (None, None)


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_an_empty_candidate_file_is_an_error(content: str, tmp_path: Path) -> None:
    candidates = tmp_path / "candidates.txt"
    candidates.write_text(content)
    code, torch_loaded, err = run_cli("rerank", "-q", "q", "--file", str(candidates))
    assert code == 1 and f"{candidates} has no candidates" in err, err
    assert not torch_loaded  # refused before the model loads
