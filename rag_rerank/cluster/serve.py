"""The HTTP service on Ray Serve: the FastAPI app of :mod:`rag_rerank.server`, one reranker (or
one per served model) per replica, and a deployment handle with the reranker's methods."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..api import RerankerOptions, RerankResult, ServerOptions, check_positive_int
from ..errors import InvalidInputError
from ..server.models import ModelRouter
from .runtime import ray  # before ray.serve: its ImportError names the extra

from ray import serve  # isort: skip
from ray.serve import Application  # isort: skip

__all__ = ["RerankDeployment", "run_until_stopped", "serve_app"]

DEPLOYMENT_NAME = "RerankDeployment"
METRICS_INTERVAL = 5.0
"""Seconds between two exports of a replica's engine counters to Ray's metrics."""


@serve.ingress()
class RerankDeployment:
    """One Serve replica: a :class:`~rag_rerank.Reranker` per served model (each its own
    micro-batching engine) behind the same FastAPI app as ``rag-rerank serve``, with the same
    model choice, split and shadow.

    Python callers in the cluster use the handle instead of HTTP (``model=`` picks a served
    model by name; the default is the first)::

        handle = serve.run(serve_app(model="BAAI/bge-reranker-v2-m3", replicas=2))
        results = await handle.rerank.remote("what is a panda?", docs, top_n=5)
    """

    def __init__(self, options: dict[str, dict[str, Any]], server: ServerOptions) -> None:
        from ..core import Reranker

        self._rerankers = {name: Reranker(RerankerOptions(**o)) for name, o in options.items()}
        for reranker in self._rerankers.values():
            reranker.score("warm-up", ["a warm-up passage"])  # fail here, not on a request
        self._server = server
        threading.Thread(
            target=self._export_metrics, name="rag-rerank-metrics", daemon=True
        ).start()

    def __serve_build_asgi_app__(self) -> Any:
        from ..server import create_app

        return create_app(self._rerankers, self._server)

    def _model(self, model: str | None) -> Any:
        if model is None:
            return next(iter(self._rerankers.values()))
        if model not in self._rerankers:
            served = ", ".join(self._rerankers)
            raise InvalidInputError("model", f"{model!r} is not served here (served: {served})")
        return self._rerankers[model]

    async def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        threshold: float | str | None = None,
        model: str | None = None,
    ) -> list[RerankResult]:
        """:meth:`Reranker.rerank <rag_rerank.Reranker.rerank>` on this replica."""
        reranker = self._model(model)
        return await reranker.arerank(query, documents, top_n=top_n, threshold=threshold)

    async def score(
        self, query: str, documents: Sequence[str], model: str | None = None
    ) -> list[float]:
        """:meth:`Reranker.score <rag_rerank.Reranker.score>` on this replica."""
        return await self._model(model).ascore(query, documents)

    async def rerank_many(
        self,
        queries: Sequence[str],
        documents_per_query: Sequence[Sequence[str]],
        top_n: int | None = None,
        threshold: float | str | None = None,
        model: str | None = None,
    ) -> list[list[RerankResult]]:
        """:meth:`Reranker.rerank_many <rag_rerank.Reranker.rerank_many>` on this replica."""
        return await self._model(model).arerank_many(
            queries, documents_per_query, top_n=top_n, threshold=threshold
        )

    def _export_metrics(self) -> None:
        # Ray's metrics export, tagged by Serve with application, deployment and replica: the
        # fleet's queue depth and batch sizes (rate of pairs over rate of batches) in one place.
        from ray.serve import metrics

        names = ("queued_pairs", "batches", "pairs", "real_tokens", "padded_tokens", "oom_splits")
        gauges = {
            name: metrics.Gauge(
                f"rag_rerank_replica_{name}",
                description=f"RerankerStats.{name} of the replica, by served model",
                tag_keys=("model",),
            )
            for name in names
        }
        while all(r.health().alive for r in self._rerankers.values()):
            for model, reranker in self._rerankers.items():
                stats = reranker.stats()
                for name, gauge in gauges.items():
                    gauge.set(getattr(stats, name), tags={"model": model})
            time.sleep(METRICS_INTERVAL)

    def check_health(self) -> None:
        """Serve's health check: a replica whose engine stopped (any model's) is replaced."""
        for name, reranker in self._rerankers.items():
            health = reranker.health()
            if not health.alive:
                reason = health.reason or "the reranker's worker is not running"
                raise RuntimeError(f"{name}: {reason}")


def serve_app(
    model: str | None = None,
    *,
    replicas: int | None = None,
    autoscaling: tuple[int, int] | dict[str, Any] | None = None,
    gpus_per_replica: float = 0.0,
    cpus_per_replica: float = 1.0,
    max_ongoing_requests: int = 256,
    options: RerankerOptions | None = None,
    models: Mapping[str, str | RerankerOptions] | None = None,
    server: ServerOptions | None = None,
    **settings: Any,
) -> Application:
    """A Ray Serve application of the reranking service, ready for ``serve.run``.

    Each replica loads its own reranker and serves the FastAPI app of
    :func:`rag_rerank.server.create_app` (``/rerank``, ``/v1/rerank``, ``/health``, ``/ready``,
    ``/metrics``, ``/info``, the page, the API key); a full queue still answers 429 with
    ``Retry-After``. The handle ``serve.run`` returns has ``rerank``, ``score`` and
    ``rerank_many``.

    Args:
        model: Hub id or folder of the cross-encoder (every node must reach it); default
            ``options.model``.
        replicas: Fixed number of replicas (default 1 when ``autoscaling`` is not given).
        autoscaling: ``(min, max)`` replicas, or a Serve ``autoscaling_config`` dict.
        gpus_per_replica: GPUs each replica reserves; fractions put several on one GPU.
        cpus_per_replica: CPUs each replica reserves (fractions allowed).
        max_ongoing_requests: Requests Serve hands one replica at once. High on purpose: the
            replica's engine batches concurrent requests together and answers 429 when its
            queue (``max_queue_pairs``, default
            :attr:`ServerOptions.default_queue_pairs <rag_rerank.ServerOptions.default_queue_pairs>`
            as for ``rag-rerank serve``) is full.
        options: Reranker options (default: the defaults); ``model`` and the reranker option
            keywords of ``settings`` are applied over them.
        models: Several models by name, as ``rag-rerank serve --model NAME=ID``: a hub id or
            folder (the options above apply to it) or its own :class:`~rag_rerank.RerankerOptions`;
            the first is the default. Every replica holds them all. Instead of ``model``.
        server: The service's settings, as for :func:`~rag_rerank.server.create_app` (API key,
            request limits, ``split``, ``shadow``, ...); default ServerOptions' defaults. Serve's
            proxy listens where :func:`run_until_stopped` says.
        **settings: Any :class:`~rag_rerank.ServerOptions` field (``api_key="secret"``,
            ``split={"default": 90, "candidate": 10}``), applied over ``server``, or any
            :class:`~rag_rerank.RerankerOptions` field (``dtype="fp32"``), applied over
            ``options``.

    Raises:
        InvalidInputError: A bad count, option or setting (``field`` names it).
        InvalidInputTypeError: A keyword that is neither a reranker option nor a server setting.

    Example:
        >>> from ray import serve  # doctest: +SKIP
        >>> handle = serve.run(serve_app("BAAI/bge-reranker-v2-m3", replicas=2))  # doctest: +SKIP
        >>> await handle.rerank.remote("what is a panda?", docs, top_n=5)  # doctest: +SKIP
    """
    if model is not None and models is not None:
        raise InvalidInputError("models", "give model or models, not both")
    names = set(ServerOptions.names())
    server = ServerOptions.from_kwargs(server, **{k: v for k, v in settings.items() if k in names})
    reranker_options = {k: v for k, v in settings.items() if k not in names}
    if model is not None:
        reranker_options["model"] = model
    common = RerankerOptions.from_kwargs(options, **reranker_options)
    check_positive_int(max_ongoing_requests, "max_ongoing_requests")
    served: dict[str, RerankerOptions] = {}
    for label, reference in (models or {common.model: common}).items():
        if isinstance(reference, RerankerOptions):
            one = reference
        else:
            one = common.replace(model=reference)
        if one.max_queue_pairs is None:
            one = one.replace(max_queue_pairs=server.default_queue_pairs)
        served[label] = one
    ModelRouter(served, split=server.split, shadow=server.shadow)  # every name checked first
    config: dict[str, Any] = {"name": DEPLOYMENT_NAME, "max_ongoing_requests": max_ongoing_requests}
    if replicas is not None and autoscaling is not None:
        raise InvalidInputError("replicas", "give replicas or autoscaling, not both")
    if autoscaling is None:
        check_positive_int(replicas, "replicas", optional=True)
        config["num_replicas"] = replicas or 1
    else:
        config["autoscaling_config"] = _autoscaling(autoscaling)
    for name, value in (
        ("gpus_per_replica", gpus_per_replica),
        ("cpus_per_replica", cpus_per_replica),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise InvalidInputError(name, f"must be a number >= 0, got {value!r}")
    config["ray_actor_options"] = {"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica}
    deployment: Any = serve.deployment(RerankDeployment)  # typed as a decorator factory
    return deployment.options(**config).bind(
        {name: o.to_dict() for name, o in served.items()}, server
    )


def _autoscaling(value: tuple[int, int] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise InvalidInputError("autoscaling", f"must be (min, max) or a dict, got {value!r}")
    low, high = value
    if isinstance(low, bool) or not isinstance(low, int) or low < 0:
        raise InvalidInputError("autoscaling", f"min must be an integer >= 0, got {low!r}")
    if isinstance(high, bool) or not isinstance(high, int) or high < max(low, 1):
        raise InvalidInputError(
            "autoscaling", f"max must be an integer >= max(min, 1), got {high!r}"
        )
    # Scale on requests in flight per replica; several at once is what micro-batching feeds on.
    return {
        "min_replicas": low,
        "max_replicas": high,
        "initial_replicas": max(low, 1),
        "target_ongoing_requests": 16,
    }


def run_until_stopped(
    app: Application,
    server: ServerOptions | None = None,
    *,
    name: str = "rag-rerank",
    shutdown_ray: bool = False,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Run ``app`` on Ray Serve (this process must be connected to Ray: see
    :func:`~rag_rerank.cluster.connect`) until SIGTERM or Ctrl-C, then delete it.

    Args:
        app: From :func:`serve_app`.
        server: ``host`` and ``port`` say where Serve's HTTP proxy listens (a Serve already
            running keeps its own); default ServerOptions' defaults. The app's own settings
            were given to :func:`serve_app`.
        name: The Serve application's name.
        shutdown_ray: Also shut Serve and Ray down on the way out (when the caller started
            them: a local instance).
        ready: Called with the base URL once every replica is up.

    Returns:
        0 after a signal.
    """
    server = server or ServerOptions()
    host, port = server.host, server.port
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(app, name=name, route_prefix="/")
        if ready is not None:
            ready(f"http://{host}:{port}")
        while not stop.wait(0.5):
            pass
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if shutdown_ray:
            serve.shutdown()
            ray.shutdown()
        else:
            serve.delete(name)
