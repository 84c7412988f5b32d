"""Reading the app's GET /metrics the way Prometheus does (its own text parser)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


async def scrape(client, **headers) -> dict[tuple[str, frozenset], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(await response.text())
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)
