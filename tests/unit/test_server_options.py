"""ServerOptions: every server setting declared once, checked once, and the ``serve`` flags."""

from __future__ import annotations

import argparse

import pytest

from rag_rerank import InvalidInputError, InvalidInputTypeError, RerankerOptions, ServerOptions
from rag_rerank.cli import build_parser


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"max_documents": 0}, "max_documents"),
        ({"max_body_bytes": True}, "max_body_bytes"),
        ({"shadow_queue": 1.5}, "shadow_queue"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"max_queue_wait": float("nan")}, "max_queue_wait"),
        ({"header_timeout": -1}, "header_timeout"),
        ({"drain_timeout": -0.5}, "drain_timeout"),
        ({"port": 70000}, "port"),
        ({"api_key": " "}, "api_key"),
        ({"allowed_hosts": "localhost"}, "allowed_hosts"),
        ({"cors_origins": [1]}, "cors_origins"),
        ({"log_level": "loud"}, "log_level"),
        ({"max_connections": 0}, "max_connections"),
        ({"split": [("a", 1)]}, "split"),
    ],
)
def test_a_bad_setting_names_its_field(settings: dict, field: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        ServerOptions(**settings)
    assert raised.value.field == field


def test_none_turns_the_optional_limits_off_and_sequences_become_tuples() -> None:
    options = ServerOptions(request_timeout=None, max_queue_wait=None, allowed_hosts=["a", "b"])
    assert (options.request_timeout, options.max_queue_wait) == (None, None)
    assert options.allowed_hosts == ("a", "b")
    assert options.replace(max_documents=10).default_queue_pairs == 160


def test_an_unknown_setting_is_refused_by_name() -> None:
    with pytest.raises(InvalidInputTypeError) as raised:
        ServerOptions.from_kwargs(max_document=5)
    assert raised.value.field == "max_document"


def test_create_app_refuses_an_unknown_setting_by_name() -> None:
    pytest.importorskip("fastapi")
    from rag_rerank.server import create_app

    with pytest.raises(InvalidInputTypeError) as raised:
        create_app({}, max_document=5)  # checked before the rerankers
    assert raised.value.field == "max_document"


def _serve_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices["serve"]


def test_serve_flags_are_the_settings_the_model_options_and_ray() -> None:
    parser = _serve_parser()
    ray = {"ray", "replicas", "autoscale", "gpus_per_replica", "cpus_per_replica", "ray_address"}
    dests = {a.dest for a in parser._actions} - {"help", "verbose"} - ray
    assert dests - set(RerankerOptions.names()) == set(ServerOptions.names())


def test_serve_flag_defaults_are_the_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_RERANK_API_KEY", raising=False)
    args = build_parser().parse_args(["serve"])
    defaults = ServerOptions()
    for name in ServerOptions.names():
        if name != "allowed_hosts":  # the command line's default follows --host
            assert getattr(args, name) == getattr(defaults, name), name
    args = build_parser().parse_args(["serve", "--request-timeout", "off"])
    assert args.request_timeout is None
