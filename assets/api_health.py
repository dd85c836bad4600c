"""A small asset that proves the API is reachable with the configured settings."""

import time

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from orchestration.resources import AmiliApiResource


@asset(
    group_name="amili_api",
    description="Calls GET /webapi/api/Ping with the AMILI_* settings and records the latency.",
)
def amili_api_ping(context: AssetExecutionContext, amili: AmiliApiResource) -> MaterializeResult:
    started = time.perf_counter()
    with amili.get_client() as client:
        answer = client.ping()
    latency_ms = (time.perf_counter() - started) * 1000
    context.log.info("Amili API answered the ping in %.1f ms", latency_ms)
    settings = amili.settings()
    return MaterializeResult(
        metadata={
            "base_url": MetadataValue.url(str(settings.base_url)),
            "latency_ms": MetadataValue.float(round(latency_ms, 1)),
            "answer": MetadataValue.json(answer if isinstance(answer, dict) else {"value": answer}),
        }
    )
