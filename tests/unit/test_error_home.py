"""Every error class of the package is defined in rag_rerank/errors.py (the HTTP layer's own
ServiceError aside) and stays importable from the module that raises it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import rag_rerank
from rag_rerank import errors

PACKAGE = Path(rag_rerank.__file__).parent

MOVED = {
    "DatasetError": "rag_rerank.evaluation.datasets",
    "UnreadableFileError": "rag_rerank.rag.store",
    "RayUnreachableError": "rag_rerank.cluster.runtime",
    "BatchFileError": "rag_rerank.cluster.files",
    "RemoteRerankError": "rag_rerank.client",
    "InsufficientMemoryError": "rag_rerank.server.memory",
    "UnknownModelError": "rag_rerank.server.models",
}


def test_error_classes_are_defined_in_errors_py() -> None:
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                elsewhere.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    # The HTTP layer's own exception (status code, headers), not an error of the library.
    assert elsewhere == ["server/errors.py: ServiceError"]


@pytest.mark.parametrize("name", sorted(MOVED))
def test_a_moved_error_is_importable_from_its_old_module(name: str) -> None:
    module = MOVED[name]
    if module.startswith("rag_rerank.cluster"):
        pytest.importorskip("ray")
    cls = getattr(errors, name)
    assert name in errors.__all__
    assert getattr(importlib.import_module(module), name) is cls
    assert issubclass(cls, errors.RerankError)


def test_unreadable_file_error_is_a_rerank_error_and_an_os_error() -> None:
    assert issubclass(errors.UnreadableFileError, errors.RerankError)
    assert issubclass(errors.UnreadableFileError, OSError)
    assert str(errors.UnreadableFileError("binary")) == "binary"


def test_the_package_exports_every_engine_error() -> None:
    assert rag_rerank.EngineStalledError is errors.EngineStalledError
    assert rag_rerank.RemoteRerankError is errors.RemoteRerankError
    assert {"EngineStalledError", "RemoteRerankError"} <= set(rag_rerank.__all__)
