"""``GET /metrics``: the gateway's Prometheus metrics (every worker's, under ``--workers N``).

Public on the service port, like the probes, and mounted only with ``GATEWAY_METRICS_ENABLED``
(on by default): the metrics carry route templates, counts and latencies, never an id, token
or user. Keep ``/metrics`` off the public ingress, or turn it off where nothing scrapes it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.observability.metrics import CONTENT_TYPE, Metrics

router = APIRouter(tags=["operations"])

_EXAMPLE = (
    "# HELP gateway_http_requests_total HTTP requests answered, by route template, method and "
    "status code.\n"
    "# TYPE gateway_http_requests_total counter\n"
    'gateway_http_requests_total{method="GET",route="/venues",status="200"} 42.0\n'
)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Every metric in the Prometheus text format.",
            "content": {CONTENT_TYPE: {"schema": {"type": "string"}, "example": _EXAMPLE}},
        }
    },
)
async def get_metrics(request: Request) -> Response:
    """Prometheus metrics: requests, token-cache tiers, Auth0 calls, logins; no permission."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE)
