"""Every command in README.md and in the docs site (docs/**/*.md) is run (or, where it needs a
network, a GPU or a long run, checked) here, so neither can drift from the code again; the site
itself builds with ``mkdocs build --strict`` (no broken link, no warning).

Commands come from the ``bash`` blocks, plus inline ``pip install ...`` and ``python -m
rag_rerank.testing ...`` spans. Each is handled by its first word: ``rag-rerank`` runs in-process in
a scratch folder with a tiny model as ``$RAG_RERANK_MODEL`` (a command naming a hub model or a
dataset that is not here is parsed instead); ``pip install`` lines must name extras and folders
that exist and pin torch; scripts must accept their flags. A command of a kind not handled here
fails the test: add it here when you add it to the README or the docs.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag_rerank.cli import build_parser, main

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser from PyPI (in the dev extra)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").rglob("*.md"))
PAGES = [README, *DOCS]
SETUP_COMMAND = re.compile(r"pip install torch==2\.13\.0 && pip install -e .*")

SERVER_ROUTES = ("/rerank", "/v1/rerank", "/v2/rerank", "/health", "/ready", "/metrics", "/info")


def readme_commands(text: str) -> list[str]:
    """Each command line of the bash blocks (continuations joined) and of the inline spans."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        lines.extend(line for line in block.replace("\\\n", " ").splitlines() if line.strip())
    lines.extend(re.findall(r"`((?:pip install|python -m rag_rerank\.testing) [^`]+)`", text))
    return lines


def split_command(line: str) -> list[list[str]]:
    """``a && b | c`` -> ``[[a...], [b...], ["|"], [c...]]`` (comments dropped)."""
    parts: list[list[str]] = [[]]
    for token in shlex.split(line, comments=True):
        if token == "&&":
            parts.append([])
        elif token == "|":
            parts.extend([["|"], []])
        else:
            parts[-1].append(token)
    return [p for p in parts if p]


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xlmr_dir: str) -> Path:
    """A scratch folder holding what the README's commands read: docs/, notes.md,
    candidates.txt and tests/data/beir_sample."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "keys.md").write_text(
        "# API keys\n\nRotate the API keys every 90 days from the admin console.\n", "utf-8"
    )
    (tmp_path / "notes.md").write_text("# Notes\n\nKeys expire after a year.\n", "utf-8")
    (tmp_path / "candidates.txt").write_text(
        "Paris is the capital of France.\nBerlin is in Germany.\n\nFrance grows wine.\n", "utf-8"
    )
    (tmp_path / "tests" / "data").mkdir(parents=True)
    shutil.copytree(ROOT / "tests" / "data" / "beir_sample", tmp_path / "tests/data/beir_sample")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_RERANK_MODEL", xlmr_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("KEY", "secret")
    return tmp_path


def _extras(pyproject: Path) -> set[str]:
    data = tomllib.loads(pyproject.read_text("utf-8"))
    return set(data["project"].get("optional-dependencies", {}))


def check_pip(argv: list[str]) -> None:
    assert argv[:2] == ["pip", "install"], argv
    args = argv[2:]
    for i, arg in enumerate(args):
        if arg == "-e":
            continue
        if arg.startswith("torch"):
            assert arg == "torch==2.13.0", f"torch must be pinned to the CPU build: {arg}"
            continue
        assert i > 0 and args[i - 1] == "-e", (
            f"not from this clone (packages are unpublished): {arg}"
        )
        folder, _, extras = arg.partition("[")
        project = ROOT / folder / "pyproject.toml"
        assert project.is_file(), f"{arg}: no {project}"
        for extra in filter(None, extras.rstrip("]").split(",")):
            assert extra in _extras(project), f"{arg}: no extra {extra!r} in {project}"


@functools.cache
def script_help(script: str) -> str:
    """``python SCRIPT --help`` (once per script: the pages show some scripts many times)."""
    assert (ROOT / script).is_file(), script
    done = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def check_script(argv: list[str]) -> None:
    help_text = script_help(argv[1])
    for flag in (a for a in argv[2:] if a.startswith("--")):
        assert flag in help_text, f"{argv[1]} has no {flag}"


def check_curl(argv: list[str]) -> None:
    url = next(a for a in argv if "localhost" in a or "127.0.0.1" in a)
    route = "/" + url.split("/", 1)[1]
    assert route in SERVER_ROUTES, route
    body = json.loads(argv[argv.index("-d") + 1])
    assert set(body) <= {"query", "texts", "raw_scores", "return_text", "truncate", "model"} | {
        "documents",  # the Cohere shapes
        "top_n",
    }


def run_rerank_cli(
    argv: list[str], stdin: str | None, capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch
) -> None:
    args = argv[1:]
    references = [a.split("=", 1)[-1] for a in args]  # --model NAME=ID names a hub model too
    needs_hub = any(a.startswith(("BAAI/", "cross-encoder/")) for a in references)
    missing_data = args[0] in ("eval", "calibrate", "compare") and not Path(args[1]).exists()
    trains = args[0] == "train" or "--train" in args
    if needs_hub or missing_data or args[0] == "serve" or trains:
        # A hub model, a dataset that is not here, a server that would not return, or minutes
        # of training (tests/integration/training/test_training.py runs it): parsed.
        build_parser().parse_args(args)
        return
    if stdin is not None:
        mp.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0, (argv, out, err)


def run_line(line: str, capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch, tmp: Path):
    line = os.path.expandvars(line.replace("/tmp/", f"{tmp}/"))
    stdin: str | None = None
    for argv in split_command(line):
        env = {}
        while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):
            name, _, value = argv.pop(0).partition("=")
            env[name] = value
        for name, value in env.items():
            mp.setenv(name, value)
        word = argv[0]
        if argv == ["|"]:
            continue
        if word == "cat":
            stdin = Path(argv[1]).read_text("utf-8")
        elif word == "pip":
            check_pip(argv)
        elif word == "rag-rerank":
            run_rerank_cli(argv, stdin, capsys, mp)
            stdin = None
        elif argv[:3] == ["python", "-m", "rag_rerank.testing"]:
            from rag_rerank.testing import build_all

            assert set(build_all(Path(argv[3]))) >= {"bert", "xlmr"}
        elif argv[:3] == ["python", "-m", "pytest"]:
            for path in (a for a in argv[3:] if not a.startswith("-")):
                assert (ROOT / path).exists(), path
        elif word == "python" and argv[1].startswith("benchmarks/"):
            check_script(argv)
        elif word == "curl":
            check_curl(argv)
        elif argv[:2] == ["jupyter", "lab"]:
            # Comes with the notebooks extra (in dev); opening a server is not a test.
            assert shutil.which("jupyter-lab"), "jupyter lab is not installed (notebooks extra)"
            assert (ROOT / argv[2]).is_dir()
        elif argv[:2] == ["jupyter", "nbconvert"]:
            # tests/integration/project/test_notebooks.py executes every notebook; here: the tool is
            # there, it executes, and the notebooks named exist.
            assert shutil.which("jupyter-nbconvert"), "nbconvert is not installed (notebooks)"
            assert "--execute" in argv
            notebooks = [a for a in argv if a.endswith(".ipynb")]
            assert notebooks and all((ROOT / n).is_file() for n in notebooks), notebooks
        elif word == "mkdocs":
            # test_docs_build_strict builds the site; serving it is not a test.
            assert argv[1:] == ["serve"], argv
            assert shutil.which("mkdocs"), "mkdocs is not installed (the docs extra)"
        else:
            pytest.fail(f"command not covered by tests/integration/project/test_readme.py: {line}")


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_command_shown_runs(
    page: Path,
    sandbox: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for line in readme_commands(page.read_text("utf-8")):
        with monkeypatch.context() as mp:
            run_line(line, capsys, mp, sandbox)


def test_the_readme_and_docs_show_commands() -> None:
    assert len(readme_commands(README.read_text("utf-8"))) > 8
    assert sum(len(readme_commands(p.read_text("utf-8"))) for p in DOCS) > 40


def test_docs_build_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict``: every page in the nav, no broken link or anchor, every
    docstring the API reference renders parses, no warning of any kind."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
    assert (tmp_path / "reference" / "python-api" / "index.html").is_file()


def test_readme_has_exactly_two_set_up_commands() -> None:
    text = README.read_text("utf-8")
    start = text.index("## Set up")
    setup = text[start : text.index("\n## ", start)]
    blocks = re.findall(r"```bash\n(.*?)```", setup, re.S)
    assert len(blocks) == 2
    demo, tests = (b.strip() for b in blocks)
    assert demo.endswith("rag-rerank demo") and ".[all]" in demo
    assert tests.endswith("python -m pytest") and ".[dev]" in tests
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert tests in ci  # CI runs the test command verbatim
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    lean = " ".join(pyproject["project"]["optional-dependencies"]["all"])
    assert "ray" not in lean and "notebooks" not in lean and "jupyter" not in lean
    for page in DOCS:  # the docs repeat them word for word, or not at all
        for command in SETUP_COMMAND.findall(page.read_text("utf-8")):
            assert command in (demo, tests), f"{_page_id(page)}: {command}"


def test_demo_with_no_hub_is_the_one_line_the_readme_promises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RAG_RERANK_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    code = main(["demo"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "python -m rag_rerank.testing /tmp/rr-models && RAG_RERANK_MODEL" in err
    assert "`rag-rerank demo --train` builds a demo reranker" in err


RUNNABLE_PYTHON = [
    README,
    ROOT / "docs" / "tutorials" / "first-run.md",
    ROOT / "docs" / "tutorials" / "pipeline.md",
]


def test_python_blocks_run(sandbox: Path, xlmr_dir: str, tmp_path: Path) -> None:
    """Every Python block of the README (Python, LangChain and LlamaIndex quickstarts) and of
    the first two tutorials runs as it stands with a tiny model: one interpreter, each block
    in a fresh namespace (torch is imported once)."""
    blocks = [
        (_page_id(page), code.replace("BAAI/bge-reranker-v2-m3", xlmr_dir))
        for page in RUNNABLE_PYTHON
        for code in re.findall(r"```python\n(.*?)```", page.read_text("utf-8"), re.S)
    ]
    assert len(blocks) >= 5
    script = tmp_path / "blocks.py"
    script.write_text(
        "import json, sys\n"
        f"for where, code in json.loads({json.dumps(json.dumps(blocks))}):\n"
        "    print(f'--- {where}', file=sys.stderr, flush=True)\n"
        "    exec(compile(code, where, 'exec'), {'__name__': '__main__'})\n",
        "utf-8",
    )
    paths = [
        str(ROOT),
        str(ROOT / "integrations/langchain"),
        str(ROOT / "integrations/llama_index"),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]


# -- the integration packages' READMEs -----------------------------------------------------------

INTEGRATION_READMES = [
    ROOT / "integrations" / "langchain" / "README.md",
    ROOT / "integrations" / "llama_index" / "README.md",
]


@pytest.mark.parametrize("readme", INTEGRATION_READMES, ids=lambda p: p.parent.name)
def test_integration_readme_installs_from_the_clone(readme: Path) -> None:
    lines = [line for line in readme_commands(readme.read_text("utf-8")) if "pip" in line]
    assert lines
    for line in lines:
        for argv in split_command(line):
            check_pip(argv)
