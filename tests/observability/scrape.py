"""Reading ``/metrics``: scrape it, and pick one sample out of the text."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with exactly ``labels`` in a scrape; 0 when absent."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and item.labels == labels:
                return float(item.value)
    return 0.0


async def scrape(gateway: httpx.AsyncClient) -> str:
    """``GET /metrics``."""
    response = await gateway.get("/metrics")
    assert response.status_code == 200
    return response.text
