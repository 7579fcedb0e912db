"""``rag-rerank serve``: the model over HTTP (the FastAPI app of :mod:`rag_rerank.server`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from ..api import ServerOptions
from ..api.serving import QUEUE_PER_REQUEST
from ..errors import InvalidInputError
from .models import add_models_option, model_specs, parse_size
from .option_flags import add_model_options, add_option_flags, load_reranker, reranker_options
from .options import non_empty, non_negative_float, port_number, positive_int
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

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Host names served by default when bound to a loopback address (``--allowed-hosts``)."""


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
    _add_setting_flags(parser, exclude=_ROLLOUT)
    group = add_model_options(
        parser,
        help_overrides={
            "max_queue_pairs": "Pairs waiting before new requests get 429 (per model), a long "
            "document counting once per window of text; "
            f"default {QUEUE_PER_REQUEST} x --max-documents.",
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
    _add_setting_flags(rollout, exclude=set(ServerOptions.names()) - set(_ROLLOUT))
    _add_ray_options(parser)
    parser.set_defaults(handler=serve)


_ROLLOUT = ("split", "shadow", "shadow_queue", "memory_limit")
"""The settings in the "rolling out a new model" group of ``serve --help``."""

_METAVARS = {
    "port": "PORT",
    "cors_origins": "ORIGIN",
    "allowed_hosts": "HOSTS",
    "split": "NAME=WEIGHT,...",
    "shadow": "NAME",
    "shadow_queue": "N",
    "memory_limit": "SIZE",
}
_HELP = {  # where the command line reads a setting its own way
    "api_key": f"{ServerOptions.help('api_key')} Default: ${API_KEY_ENV}, which other users "
    "cannot read in the process list (prefer it to the flag), else none.",
    "allowed_hosts": "Comma-separated Host header names to serve (any port), or '*' for any; "
    "others get 400. Default: localhost,127.0.0.1,::1 when --host is a loopback address, "
    "else any.",
    "memory_limit": "Memory the models may use, e.g. 8GiB (default: the device's free memory); "
    "the server refuses to start when the models' estimated needs exceed it.",
}


def _host_list(text: str) -> list[str] | None:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected host names separated by commas, or '*'")
    return None if names == ["*"] else names


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


_PARSERS: dict[str, Callable[[str], Any]] = {
    "port": port_number,
    "api_key": non_empty,
    "drain_timeout": non_negative_float,
    "allowed_hosts": _host_list,
    "memory_limit": _size,
    "split": str,  # NAME=WEIGHT,... read by parse_split, which names the bad part
}
"""Settings whose flag reads its text its own way (the others: the field's type, checked by
:class:`ServerOptions`)."""


def _add_setting_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, exclude: Collection[str]
) -> None:
    """One flag per :class:`ServerOptions` field but ``exclude`` (``max_documents`` ->
    ``--max-documents``), with the field's default and help."""
    add_option_flags(
        parser,
        ServerOptions,
        help=_HELP,
        defaults={"api_key": os.environ.get(API_KEY_ENV) or None, "allowed_hosts": ()},
        parsers=_PARSERS,
        exclude=exclude,
        flags={"cors_origins": "--cors-origin"},  # once per origin: singular
        metavars=_METAVARS,
        repeated=("cors_origins",),
    )


def serve(args: argparse.Namespace) -> int:
    """Check the models fit, load and warm them up, serve until SIGTERM; returns the exit code."""
    import logging

    try:
        from ..server import create_app
        from ..server.models import ModelRouter, parse_split
        from ..server.run import run_server
    except ImportError as exc:
        error(str(exc))
        return 2
    specs = model_specs(args.model)
    try:
        split = None if args.split is None else parse_split(args.split)
        settings = {name: getattr(args, name) for name in ServerOptions.names()}
        settings.update(split=split, allowed_hosts=_allowed_hosts(args))
        server = ServerOptions(**settings)
        # Every name checked before any model loads.
        ModelRouter(dict.fromkeys(specs), split=split, shadow=server.shadow)
    except InvalidInputError as exc:
        error("--" + exc.field.replace("_", "-") + str(exc).removeprefix(exc.field))
        return 2
    queue_pairs = args.max_queue_pairs or server.default_queue_pairs
    if queue_pairs < server.max_documents:
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
    logging.basicConfig(level=server.log_level.upper(), format=LOG_FORMAT)
    if args.ray:
        return _serve_on_ray(args, options, server)
    log = logging.getLogger("rag_rerank.server")
    if server.host not in LOOPBACK_HOSTS and not server.api_key:
        log.warning(
            "listening on %s without --api-key: anyone who can reach it can use it", server.host
        )
    _check_memory(options, server.memory_limit)
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
        app = create_app(rerankers, server)
        return run_server(app, server, on_exit=lambda seconds: _stop(rerankers, seconds))
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
    from ..core.device import free_memory, resolve_device, resolve_dtype
    from ..server.memory import check_memory, model_need

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
        check_memory(needs, free_memory(device), f"the free memory of {device}")


def _allowed_hosts(args: argparse.Namespace) -> Sequence[str] | None:
    """``--allowed-hosts``; not given: the loopback names on loopback, any host elsewhere."""
    if args.allowed_hosts != ():
        return args.allowed_hosts
    return list(LOOPBACK_HOSTS) if args.host in LOOPBACK_HOSTS else None


def _serve_on_ray(
    args: argparse.Namespace, options: dict[str, RerankerOptions], server: ServerOptions
) -> int:
    """``serve --ray``: the same app on Ray Serve replicas until SIGTERM or Ctrl-C."""
    import logging

    try:
        from ..cluster.runtime import connect, ray
    except ImportError as exc:
        error(str(exc))
        return 2

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
            models=options,
            server=server,
        )
    except BaseException:
        if started:
            ray.shutdown()
        raise
    return run_until_stopped(
        app,
        server,
        shutdown_ray=started,
        ready=lambda url: log.info(
            "serving %s on Ray Serve at %s", ", ".join(o.model for o in options.values()), url
        ),
    )
