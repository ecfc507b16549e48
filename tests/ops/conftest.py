"""Operations tests reuse the end-to-end gateway: in-process apps over a real memcached and
the emulator served for real."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import emulator_http, gateway_factory, recorder

__all__ = ["emulator_http", "gateway_factory", "recorder", "sample"]


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
