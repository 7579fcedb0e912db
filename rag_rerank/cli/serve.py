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
    from ..api import RerankerOptions
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
    _add_ray_options(parser)
    parser.set_defaults(handler=serve)


def _add_ray_options(parser: argparse.ArgumentParser) -> None:
    """``--ray`` and its flags: the same app as Ray Serve replicas (``rag_rerank.cluster``)."""
    from .batch import add_ray_address, non_negative_number

    group = parser.add_argument_group(
        "Ray Serve", "serve on Ray: several replicas, one model each (needs the 'ray' extra)"
    )
    group.add_argument(
        "--ray", action="store_true", help="serve on Ray Serve instead of one process"
    )
    scale = group.add_mutually_exclusive_group()
    scale.add_argument(
        "--replicas", type=positive_int, default=None, metavar="N", help="replicas (default: 1)"
    )
    scale.add_argument(
        "--autoscale",
        type=_min_max,
        default=None,
        metavar="MIN:MAX",
        help="autoscale between MIN and MAX replicas on queue length",
    )
    group.add_argument(
        "--gpus-per-replica",
        type=non_negative_number,
        default=None,
        metavar="N",
        help="GPUs per replica, fractions allowed (default: 1 when the cluster has GPUs, else 0)",
    )
    group.add_argument(
        "--cpus-per-replica",
        type=non_negative_number,
        default=1.0,
        metavar="N",
        help="CPUs per replica, fractions allowed (default: 1)",
    )
    add_ray_address(group)


def _min_max(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    if not sep or not low.isdigit() or not high.isdigit():
        raise argparse.ArgumentTypeError(f"expected MIN:MAX replicas, e.g. 1:4, got {text!r}")
    if int(high) < max(int(low), 1):
        raise argparse.ArgumentTypeError(f"MAX must be at least MIN and 1, got {text!r}")
    return int(low), int(high)


def serve(args: argparse.Namespace) -> int:
    """Load the model, warm it up and serve until SIGTERM; returns the server's exit code."""
    import logging

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
    if args.ray:
        return _serve_on_ray(args, options)
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
            str(reranker.dtype).removeprefix("torch."),
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


def _serve_on_ray(args: argparse.Namespace, options: RerankerOptions) -> int:
    """``serve --ray``: the same app on Ray Serve replicas until SIGTERM or Ctrl-C."""
    import logging

    try:
        from ..cluster.runtime import connect, ray
    except ImportError as exc:
        error(str(exc))
        return 2

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("rag_rerank.server")
    started = connect(args.ray_address)  # first: a bad address fails before Serve is imported
    try:
        from ..cluster.serve import run_until_stopped, serve_app

        gpus = args.gpus_per_replica
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) else 0.0
        app = serve_app(
            replicas=args.replicas,
            autoscaling=args.autoscale,
            gpus_per_replica=gpus,
            cpus_per_replica=args.cpus_per_replica,
            api_key=args.api_key,
            max_documents=args.max_documents,
            max_body_bytes=args.max_body_bytes,
            cors_origins=args.cors_origin,
            options=options,
        )
    except BaseException:
        if started:
            ray.shutdown()
        raise
    return run_until_stopped(
        app,
        host=args.host,
        port=args.port,
        shutdown_ray=started,
        ready=lambda url: log.info("serving %s on Ray Serve at %s", options.model, url),
    )
