"""Read a gateway's ``/_gateway/metrics`` the way Prometheus does, and look samples up by labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base: str, prefix: str = "/_gateway") -> Samples:
    response = httpx.get(base + prefix + "/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for one not exported yet (a counter nobody has incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
