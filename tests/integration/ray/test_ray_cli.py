"""The Ray commands' faults that need no Ray instance: malformed input rows, bad file kinds,
bad scaling flags, Ray not installed, and a cluster address nobody answers."""

from __future__ import annotations

import io
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import pytest
from server_testing import free_port

from rag_rerank.cli import build_parser, main

REPO = Path(__file__).resolve().parents[3]


def run(*argv: str) -> tuple[int, str]:
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        code = main(list(argv))
    return code, stderr.getvalue()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "row 2: not valid JSON"),
        ('{"documents": ["a"]}', "row 2: query: must be a non-empty string"),
        ('{"query": "q", "documents": ["a", 3]}', "row 2: documents[1]: must be a string"),
        ('{"query": "q", "documents": "a"}', "row 2: documents: must be a list of strings"),
        ('{"query": "q"}', "row 2: needs 'documents' (a list of strings) or 'document'"),
        ('{"query": "q", "document": "a"}', "row 2: has 'document' but the rows before it"),
        ("[1, 2]", "row 2: expected an object"),
    ],
)
def test_a_malformed_row_stops_with_file_and_row(tmp_path: Path, line: str, message: str) -> None:
    pytest.importorskip("ray")
    source = tmp_path / "in.jsonl"
    source.write_text('{"query": "q", "documents": ["a"]}\n' + line + "\n", encoding="utf-8")
    code, err = run("batch", str(source), str(tmp_path / "out.jsonl"), "--model", "unused/model")
    assert code == 1
    assert f"{source}, {message}" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_bad_file_kinds(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    (tmp_path / "in.csv").write_text("query,document\n", encoding="utf-8")
    code, err = run("batch", str(tmp_path / "in.csv"), str(tmp_path / "o.jsonl"), "--model", "m/m")
    assert code == 1 and "in.csv: expected a .jsonl or .parquet file" in err
    (tmp_path / "in.jsonl").write_text('{"query": "q", "document": "d"}\n', encoding="utf-8")
    code, err = run("batch", str(tmp_path / "in.jsonl"), str(tmp_path / "o.txt"), "--model", "m/m")
    assert code == 1 and "o.txt: expected a .jsonl or .parquet file" in err


def _cli(*argv: str, block_ray: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
    prelude = "import sys; sys.modules['ray'] = None; " if block_ray else "import sys; "
    code = prelude + "from rag_rerank.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_without_ray_batch_and_serve_ray_exit_2_naming_the_extra(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"query": "q", "document": "d"}\n', encoding="utf-8")
    for argv in (
        ["batch", str(source), str(tmp_path / "out.jsonl"), "--model", "m/m"],
        ["serve", "--ray", "--model", "m/m"],
    ):
        done = _cli(*argv, block_ray=True)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and 'pip install "rag-rerank[ray]"' in lines[0], done.stderr


@pytest.mark.timeout(60)  # a hang fails here instead of waiting for Ray's own timeouts
@pytest.mark.parametrize("command", ["batch", "serve"])
def test_an_unreachable_ray_address_fails_fast(tmp_path: Path, command: str) -> None:
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    source = tmp_path / "in.jsonl"
    source.write_text('{"query": "q", "document": "d"}\n', encoding="utf-8")
    address = f"127.0.0.1:{free_port()}"
    argv = [str(source), str(tmp_path / "o.jsonl")] if command == "batch" else ["--ray"]
    code, err = run(command, *argv, "--model", "m/m", "--ray-address", address)
    assert code == 1, err
    assert err.strip() == (
        f"rag-rerank: error: ray address {address}: cannot reach a Ray cluster there "
        "(connection refused)"
    )
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--autoscale", "3:1"], "argument --autoscale: MAX must be at least MIN and 1"),
        (["--autoscale", "2"], "argument --autoscale: expected MIN:MAX replicas"),
        (["--replicas", "2", "--autoscale", "1:2"], "not allowed with argument --replicas"),
        (["--replicas", "0"], "argument --replicas: must be at least 1"),
        (["--gpus-per-replica", "-1"], "argument --gpus-per-replica: must be at least 0"),
    ],
)
def test_bad_scaling_flags_are_usage_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", "--ray", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_serve_app_refuses_bad_arguments(bert_dir: str) -> None:
    pytest.importorskip("ray")
    from rag_rerank import InvalidInputError, InvalidInputTypeError
    from rag_rerank.cluster import serve_app

    for kwargs, field in (
        ({"replicas": 2, "autoscaling": (1, 2)}, "replicas"),
        ({"replicas": 0}, "replicas"),
        ({"autoscaling": (3, 1)}, "autoscaling"),
        ({"gpus_per_replica": -0.5}, "gpus_per_replica"),
        ({"max_documents": 0}, "max_documents"),
        ({"dtype": "fp8"}, "dtype"),
    ):
        with pytest.raises(InvalidInputError) as info:
            serve_app(bert_dir, **kwargs)
        assert info.value.field == field, kwargs
    with pytest.raises(InvalidInputTypeError, match="batch_sizes: is not a reranker option"):
        serve_app(bert_dir, batch_sizes=4)
    # Several models: the names of the split and the shadow are checked before Serve starts.
    models = {"default": bert_dir, "candidate": bert_dir}
    for kwargs, field in (
        ({"models": models, "split": {"default": 90, "other": 10}}, "split"),
        ({"models": models, "shadow": "other"}, "shadow"),
        ({"models": models, "model": bert_dir}, "models"),
    ):
        with pytest.raises(InvalidInputError) as info:
            serve_app(**kwargs)
        assert info.value.field == field, kwargs
