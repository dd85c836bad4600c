"""Dagster resources: thin wrappers that build the project's Dagster-free objects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import ConfigurableResource
from pydantic import Field

from amili.client import AmiliClient
from amili.settings import ClientSettings, PipelineSettings, load


class AmiliApiResource(ConfigurableResource):
    """The Amili Batch API client.

    Settings come from ``AMILI_BASE_URL``, ``AMILI_TOKEN``, ``AMILI_SENDER_ID`` (and the other
    ``AMILI_*`` variables, see :class:`amili.settings.ClientSettings`). The token is never a
    resource field, so it cannot show up in the Dagster UI or in run config.
    """

    base_url: str | None = Field(
        default=None, description="Overrides AMILI_BASE_URL (for tests and one-off runs)"
    )
    sender_id: str | None = Field(default=None, description="Overrides AMILI_SENDER_ID")
    max_concurrency: int | None = Field(
        default=None, description="Overrides AMILI_MAX_CONCURRENCY: batches in flight"
    )

    def settings(self) -> ClientSettings:
        overrides = {
            name: value
            for name, value in (
                ("base_url", self.base_url),
                ("sender_id", self.sender_id),
                ("max_concurrency", self.max_concurrency),
            )
            if value is not None
        }
        return load(ClientSettings, **overrides)

    @contextmanager
    def get_client(self) -> Iterator[AmiliClient]:
        with AmiliClient(self.settings()) as client:
            yield client


class PipelineResource(ConfigurableResource):
    """Where the pipeline reads and writes (``AMILI_WAREHOUSE``, ``AMILI_PIPELINE_DB``)."""

    warehouse: str | None = Field(default=None, description="Overrides AMILI_WAREHOUSE")
    pipeline_db: str | None = Field(default=None, description="Overrides AMILI_PIPELINE_DB")

    def settings(self) -> PipelineSettings:
        overrides = {
            name: value
            for name, value in (("warehouse", self.warehouse), ("pipeline_db", self.pipeline_db))
            if value is not None
        }
        return load(PipelineSettings, **overrides)
