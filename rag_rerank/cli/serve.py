"""``rag-rerank serve``: the model over HTTP (the FastAPI app of :mod:`rag_rerank.server`)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from .models import add_models_option, model_specs, parse_size
from .option_flags import add_model_options, load_reranker, reranker_options
from .options import non_empty, non_negative_float, port_number, positive_float, positive_int
from .output import error

if TYPE_CHECKING:
    from ..api import RerankerOptions
    from ..core import Reranker
    from .options import Subparsers

__all__ = ["API_KEY_ENV", "add_serve"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The one format of the server's log lines, uvicorn's included."""

API_KEY_ENV = "RAG_RERANK_API_KEY"
"""Environment variable that sets the default of ``--api-key``."""

_QUEUE_PER_REQUEST = 16
"""Default queue bound, in requests of ``--max-documents`` each."""

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Host names served by default when bound to a loopback address (``--allowed-hosts``)."""


def _host_list(text: str) -> list[str] | None:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected host names separated by commas, or '*'")
    return None if names == ["*"] else names


def add_serve(subparsers: Subparsers) -> None:
    """Register ``serve``."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the model over HTTP (TEI- and Cohere-compatible /rerank, web page at /)",
        description="Serve one model or several over HTTP: POST /rerank (TEI shape), POST "
        "/v1/rerank and /v2/rerank (Cohere/Jina shape), /health, /ready, /metrics, /info, a web "
        "console at / and /docs. With several models, requests pick one by name (the 'model' "
        "field), by --split or by default, and --shadow compares a candidate on live traffic. "
        "Needs the 'server' extra.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument(
        "--port", type=port_number, default=8080, help="port; 0 picks a free one (default: 8080)"
    )
    parser.add_argument(
        "--api-key",
        type=non_empty,
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"require 'Authorization: Bearer KEY' on every route but /health; prefer "
        f"${API_KEY_ENV}, which other users cannot read in the process list (default: none)",
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
        "--request-timeout",
        type=positive_float,
        default=60.0,
        help="seconds a rerank request may take, queueing included; past it its work is "
        "cancelled and it gets 504 (default: 60)",
    )
    parser.add_argument(
        "--max-queue-wait",
        type=positive_float,
        default=10.0,
        help="refuse a request at once with 429 and Retry-After when the work ahead of it "
        "would take longer than this many seconds at the measured throughput (default: 10)",
    )
    parser.add_argument(
        "--max-request-windows",
        type=positive_int,
        default=2048,
        help="most text per request, in windows of --max-length tokens (about 2,000 characters "
        "each; an ordinary document is one): 413 above it (default: 2048)",
    )
    parser.add_argument(
        "--allowed-hosts",
        type=_host_list,
        default=(),
        metavar="HOSTS",
        help="comma-separated Host header names to serve, or '*' for any (default: "
        "localhost,127.0.0.1,::1 when --host is a loopback address, else any)",
    )
    parser.add_argument(
        "--header-timeout",
        type=positive_float,
        default=10.0,
        help="seconds a client has to send a request's headers (default: 10)",
    )
    parser.add_argument(
        "--body-min-rate",
        type=positive_float,
        default=10_000.0,
        help="slowest request body upload accepted, in bytes per second (default: 10000)",
    )
    parser.add_argument(
        "--keep-alive-timeout",
        type=positive_float,
        default=5.0,
        help="seconds an idle keep-alive connection stays open (default: 5)",
    )
    parser.add_argument(
        "--max-connections",
        type=positive_int,
        default=None,
        help="open connections; past it new ones get 503 (default: below the process's "
        "file-descriptor limit, at most 4096)",
    )
    parser.add_argument(
        "--write-timeout",
        type=positive_float,
        default=10.0,
        help="seconds a response may wait unread before its connection is cut (default: 10)",
    )
    parser.add_argument(
        "--write-min-rate",
        type=positive_float,
        default=10_000.0,
        help="slowest reading of a response accepted, in bytes per second (default: 10000)",
    )
    parser.add_argument(
        "--max-pending-write-bytes",
        type=positive_int,
        default=256 * 1024 * 1024,
        help="bytes of responses waiting to be read, over all connections, above which new "
        "requests get 503 (default: 256 MiB)",
    )
    parser.add_argument(
        "--max-echo-bytes",
        type=positive_int,
        default=2 * 1024 * 1024,
        help="most text one response sends back (/clean, return_text, return_documents), in "
        "bytes: 413 above it (default: 2 MiB)",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="server log level (default: info)",
    )
    group = add_model_options(
        parser,
        help_overrides={
            "max_queue_pairs": "Pairs waiting before new requests get 429 (per model), a long "
            "document counting once per window of text; "
            f"default {_QUEUE_PER_REQUEST} x --max-documents.",
            "show_progress": "Progress bars in the server's log; default off.",
        },
        exclude=("model",),
    )
    add_models_option(
        group,
        "Model to serve: hub id or local folder; NAME=PATH_OR_ID names it. Give it several "
        "times to serve several models (each with its own engine; requests pick one by "
        "name); the first is the default.",
    )
    rollout = parser.add_argument_group("rolling out a new model")
    rollout.add_argument(
        "--split",
        default=None,
        metavar="NAME=WEIGHT,...",
        help="route requests that name no model by weight, e.g. default=90,candidate=10; sticky "
        "per X-Rerank-Key header, random without one (default: all to the first model)",
    )
    rollout.add_argument(
        "--shadow",
        default=None,
        metavar="NAME",
        help="also score every request served by another model with this one, off the request's "
        "path; /metrics and /info compare the rankings (top-1, top-5 overlap, Kendall tau)",
    )
    rollout.add_argument(
        "--shadow-queue",
        type=positive_int,
        default=64,
        metavar="N",
        help="shadow requests waiting or running at once; more are dropped and counted "
        "(default: 64)",
    )
    rollout.add_argument(
        "--memory-limit",
        type=_size,
        default=None,
        metavar="SIZE",
        help="memory the models may use, e.g. 8GiB (default: the device's free memory); the "
        "server refuses to start when the models' estimated needs exceed it",
    )
    _add_ray_options(parser)
    parser.set_defaults(handler=serve)


def _add_ray_options(parser: argparse.ArgumentParser) -> None:
    """``--ray`` and its flags: the same app as Ray Serve replicas (``rag_rerank.cluster``)."""
    from .options import add_ray_address
    from .options import non_negative_float as non_negative_number

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


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def serve(args: argparse.Namespace) -> int:
    """Check the models fit, load and warm them up, serve until SIGTERM; returns the exit code."""
    import logging

    try:
        from ..server import create_app
        from ..server.models import ModelRouter, parse_split
        from ..server.run import Timeouts, run_server
    except ImportError as exc:
        error(str(exc))
        return 2
    specs = model_specs(args.model)
    try:
        split = None if args.split is None else parse_split(args.split)
        # Every name checked before any model loads.
        ModelRouter(dict.fromkeys(specs), split=split, shadow=args.shadow)
    except InvalidInputError as exc:
        error(f"--{exc}")
        return 2
    queue_pairs = args.max_queue_pairs or _QUEUE_PER_REQUEST * args.max_documents
    if queue_pairs < args.max_documents:
        error("--max-queue-pairs must be at least --max-documents")
        return 2
    options = {
        name: reranker_options(
            args,
            model=reference,
            max_queue_pairs=queue_pairs,
            show_progress=bool(args.show_progress),  # a server's log is no place for bars
        )
        for name, reference in specs.items()
    }
    if args.ray:
        return _serve_on_ray(args, options, split)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    log = logging.getLogger("rag_rerank.server")
    if args.host not in LOOPBACK_HOSTS and not args.api_key:
        log.warning(
            "listening on %s without --api-key: anyone who can reach it can use it", args.host
        )
    timeouts = Timeouts(
        header_timeout=args.header_timeout,
        body_min_rate=args.body_min_rate,
        keep_alive_timeout=args.keep_alive_timeout,
        max_connections=args.max_connections,
        write_timeout=args.write_timeout,
        write_min_rate=args.write_min_rate,
        max_pending_write_bytes=args.max_pending_write_bytes,
    )
    _check_memory(options, args.memory_limit)
    rerankers: dict[str, Reranker] = {}
    try:
        for name, model_options in options.items():
            reranker = rerankers[name] = load_reranker(model_options)
            reranker.score("warm-up", ["a warm-up passage"])  # fail now, not on a request
            log.info(
                "serving %s as %r on %s (%s)",
                reranker.model_name,
                name,
                reranker.device,
                reranker.precision,
            )
        app = create_app(
            rerankers,
            api_key=args.api_key,
            max_documents=args.max_documents,
            max_body_bytes=args.max_body_bytes,
            cors_origins=args.cors_origin,
            max_request_windows=args.max_request_windows,
            allowed_hosts=_allowed_hosts(args),
            split=split,
            shadow=args.shadow,
            shadow_queue=args.shadow_queue,
            max_echo_bytes=args.max_echo_bytes,
            request_timeout=args.request_timeout,
            max_queue_wait=args.max_queue_wait,
        )
        return run_server(
            app,
            host=args.host,
            port=args.port,
            drain_timeout=args.drain_timeout,
            log_level=args.log_level.lower(),
            timeouts=timeouts,
            on_exit=lambda seconds: _stop(rerankers, seconds),
        )
    finally:
        _stop(rerankers, 1.0)  # a failed start; after a run, _stop found nothing left to stop


def _stop(rerankers: dict[str, Reranker], seconds: float) -> None:
    """Stop the engines within ``seconds`` (what is left of --drain-timeout), caches flushed.

    Requests are over by now; work they left behind is dropped, not waited for. A forward pass
    cannot be interrupted: when one still runs at the end of the budget the process ends at
    once (status 0, logs flushed) rather than overrun the budget its supervisor gave it (the
    interpreter's teardown would wait for the pass, seconds on a CPU).
    """
    import logging
    import time

    deadline = time.monotonic() + seconds
    stopping = [rerankers.pop(name) for name in list(rerankers)]
    for reranker in stopping:
        reranker.close(timeout=max(0.0, deadline - time.monotonic()), cancel=True)
    if any(reranker.health().alive for reranker in stopping):
        logging.getLogger("rag_rerank.server").warning(
            "a forward pass still runs at the end of --drain-timeout: exiting now"
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _check_memory(options: dict[str, RerankerOptions], limit: int | None) -> None:
    """Raise :class:`~rag_rerank.server.memory.InsufficientMemoryError` (a ModelLoadError: exit
    2) when the models' estimated needs exceed ``limit`` or the device's free memory."""
    from ..core.device import resolve_device, resolve_dtype
    from ..server.memory import available_bytes, check_memory, model_need

    first = next(iter(options.values()))
    device = resolve_device(first.device)
    needs = {
        name: model_need(
            o.model,
            o.revision,
            str(resolve_dtype(device, o.dtype, quantize=o.quantize)).removeprefix("torch."),
        )
        for name, o in options.items()
    }
    if limit is not None:
        check_memory(needs, limit, f"--memory-limit {limit} bytes")
    else:
        check_memory(needs, available_bytes(str(device)), f"the free memory of {device}")


def _allowed_hosts(args: argparse.Namespace) -> list[str] | None:
    """``--allowed-hosts``; not given: the loopback names on loopback, any host elsewhere."""
    if args.allowed_hosts != ():
        return args.allowed_hosts
    return list(LOOPBACK_HOSTS) if args.host in LOOPBACK_HOSTS else None


def _serve_on_ray(
    args: argparse.Namespace, options: dict[str, RerankerOptions], split: dict[str, float] | None
) -> int:
    """``serve --ray``: the same app on Ray Serve replicas until SIGTERM or Ctrl-C."""
    import logging

    try:
        from ..cluster.runtime import connect, ray
    except ImportError as exc:
        error(str(exc))
        return 2

    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
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
            max_request_windows=args.max_request_windows,
            allowed_hosts=_allowed_hosts(args),
            max_echo_bytes=args.max_echo_bytes,
            models=options,
            split=split,
            shadow=args.shadow,
            shadow_queue=args.shadow_queue,
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
        ready=lambda url: log.info(
            "serving %s on Ray Serve at %s", ", ".join(o.model for o in options.values()), url
        ),
    )
