"""The served models as one service: a :class:`~rag_rerank.server.service.RerankService` per model,
which one answers a request (by name, by the split, or the default), and what the routes that
are not per model (``/health``, ``/ready``, ``/info``, ``/metrics``, draining) see of them all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from fastapi import Request

from .errors import ServiceError
from .metrics import EngineState, Metrics
from .models import KEY_HEADER, MODEL_HEADER, ModelRouter, UnknownModelError
from .shadow import ShadowScorer
from .status import InfoResponse, ModelInfo, ShadowSummary

if TYPE_CHECKING:
    from ..core import Reranker
    from .service import RerankService

__all__ = ["ServiceRegistry"]


class ServiceRegistry:
    """Every model's service, and the routing between them. Available as ``app.state.service``
    (what the draining shutdown of :func:`~rag_rerank.server.run.run_server` uses).

    Args:
        services: One service per model name, in order (the first is the default).
        router: Chooses the model (by name) of each request.
        metrics: The metrics every service records into.
        shadow: The shadow scorer, when a model shadows the others.
    """

    def __init__(
        self,
        services: Mapping[str, RerankService],
        router: ModelRouter[Reranker],
        metrics: Metrics,
        shadow: ShadowScorer | None = None,
    ) -> None:
        self.services = dict(services)
        self.router = router
        self.metrics = metrics
        self.shadow = shadow

    @staticmethod
    def of(request: Request) -> ServiceRegistry:
        """The registry of the app serving ``request`` (``app.state.service``)."""
        registry: ServiceRegistry = request.app.state.service
        return registry

    @property
    def default(self) -> RerankService:
        """The default model's service."""
        return self.services[self.router.default]

    @property
    def reranker(self) -> Reranker:
        """The default model."""
        return self.default.reranker

    def service(self, requested: str | None, request: Request) -> RerankService:
        """The service that answers ``request``, which named ``requested`` (or no model).

        Raises:
            ServiceError: 404 naming the served models, for a model that is not served.
        """
        try:
            name = self.router.route(requested, request.headers.get(KEY_HEADER))
        except UnknownModelError as exc:
            raise ServiceError(404, "model_not_found", str(exc), field="model") from None
        return self.services[name]

    @staticmethod
    def served_by(service: RerankService) -> dict[str, str]:
        """Response headers naming the model that answered (readable by browsers too)."""
        return {"Access-Control-Expose-Headers": MODEL_HEADER, MODEL_HEADER: service.name}

    # -- what /health, /ready and the draining shutdown see -------------------------------------

    @property
    def alive(self) -> bool:
        """Every model's worker runs."""
        return all(s.alive for s in self.services.values())

    async def probe(self) -> None:
        """Let each model that failed probe itself (see :class:`~.guards.ReadinessProbe`)."""
        for service in self.services.values():
            await service.probe()

    @property
    def ready(self) -> bool:
        """Every model is ready."""
        return self.not_ready_reason() is None

    def not_ready_reason(self) -> str | None:
        """Why /ready answers 503 (naming the model when there are several); ``None``: 200."""
        for name, service in self.services.items():
            reason = service.not_ready_reason()
            if reason is not None:
                return reason if len(self.services) == 1 else f"{name}: {reason}"
        return None

    @property
    def busy(self) -> bool:
        """Requests are being served or pairs are queued, for any model."""
        return any(s.busy for s in self.services.values())

    def start_draining(self) -> None:
        """Drain every model's service."""
        for service in self.services.values():
            service.start_draining()

    # -- /info and /metrics ---------------------------------------------------------------------

    def info(self) -> InfoResponse:
        """The default model's info (as a one-model server gives it), every model, the split
        and the shadow summary."""
        split = self.router.split
        models = []
        for name, service in self.services.items():
            info = service.info()
            models.append(
                ModelInfo(
                    name=name,
                    model_id=info.model_id,
                    device=info.device,
                    model_dtype=info.model_dtype,
                    precision=info.precision,
                    max_input_length=info.max_input_length,
                    max_batch_tokens=info.max_batch_tokens,
                    max_queue_pairs=info.max_queue_pairs,
                    long_documents=info.long_documents,
                    default=name == self.router.default,
                    weight=None if split is None else split.weights.get(name, 0.0),
                )
            )
        shadow = None if self.shadow is None else self.shadow.summary()
        return self.default.info().model_copy(
            update={
                "models": models,
                "split": None if split is None else split.weights,
                "shadow": None if shadow is None else [ShadowSummary(**row) for row in shadow],
            }
        )

    def render_metrics(self) -> str:
        """Prometheus text: the shared metrics with each model's engine, then the shadow's."""
        engines = {
            name: EngineState(s.reranker.stats(), s.reranker.health(), s.reranker.cache_stats())
            for name, s in self.services.items()
        }
        text = self.metrics.render(engines, ready=self.ready)
        if self.shadow is not None:
            text += "\n".join(self.shadow.render()) + "\n"
        return text
