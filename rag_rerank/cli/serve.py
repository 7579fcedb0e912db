"""``rag-rerank serve``: the model over HTTP (the FastAPI app of :mod:`rag_rerank.server`)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from .options import (
    add_model_options,
    load_reranker,
    non_empty,
    non_negative_float,
    positive_int,
    reranker_options,
)
from .output import error

if TYPE_CHECKING:
    from . import Subparsers

__all__ = ["API_KEY_ENV", "add_serve"]

API_KEY_ENV = "RAG_RERANK_API_KEY"
"""Environment variable that sets the default of ``--api-key``."""

_QUEUE_PER_REQUEST = 16
"""Default queue bound, in requests of ``--max-documents`` each."""


def add_serve(subparsers: Subparsers) -> None:
    """Register ``serve``."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the model over HTTP (TEI- and Cohere-compatible /rerank, web page at /)",
        description="Serve the model over HTTP: POST /rerank (TEI shape), POST /v1/rerank "
        "(Cohere/Jina shape), /health, /ready, /metrics, /info, a web console at / and /docs. "
        "Needs the 'server' extra.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=positive_int, default=8080, help="port (default: 8080)")
    parser.add_argument(
        "--api-key",
        type=non_empty,
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"require 'Authorization: Bearer KEY' on every route but /health "
        f"(default: ${API_KEY_ENV}; none)",
    )
    parser.add_argument(
        "--max-documents",
        type=positive_int,
        default=1000,
        help="documents per request (default: 1000)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=8 * 1024 * 1024,
        help="largest request body in bytes (default: 8 MiB)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="allow browser calls from this origin (repeatable; default: CORS off)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=non_negative_float,
        default=30.0,
        help="on SIGTERM, seconds to let requests in flight finish (default: 30)",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="server log level (default: info)",
    )
    add_model_options(
        parser,
        help_overrides={
            "max_queue_pairs": "Pairs waiting before new requests get 429; "
            f"default {_QUEUE_PER_REQUEST} x --max-documents.",
            "show_progress": "Progress bars in the server's log; default off.",
        },
    )
    parser.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    """Load the model, warm it up and serve until SIGTERM; returns the server's exit code."""
    import logging

    from ..core.device import precision_note

    try:
        from ..server import create_app
        from ..server.run import run_server
    except ImportError as exc:
        error(str(exc))
        return 2
    options = reranker_options(args)
    queue_pairs = options.max_queue_pairs or _QUEUE_PER_REQUEST * args.max_documents
    if queue_pairs < args.max_documents:
        error("--max-queue-pairs must be at least --max-documents")
        return 2
    options = options.replace(
        max_queue_pairs=queue_pairs,
        show_progress=bool(options.show_progress),  # a server's log is no place for bars
    )
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger("rag_rerank.server")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        log.warning(
            "listening on %s without --api-key: anyone who can reach it can use it", args.host
        )
    reranker = load_reranker(options)
    try:
        reranker.score("warm-up", ["a warm-up passage"])  # fail now, not on the first request
        app = create_app(
            reranker,
            api_key=args.api_key,
            max_documents=args.max_documents,
            max_body_bytes=args.max_body_bytes,
            cors_origins=args.cors_origin,
        )
        log.info(
            "serving %s on %s (%s) at http://%s:%d",
            reranker.model_name,
            reranker.device,
            precision_note(reranker.device, reranker.dtype),
            args.host,
            args.port,
        )
        return run_server(
            app,
            host=args.host,
            port=args.port,
            drain_timeout=args.drain_timeout,
            log_level=args.log_level.lower(),
        )
    finally:
        reranker.close()
