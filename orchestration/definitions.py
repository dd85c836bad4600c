"""The Dagster code location: ``dagster dev -w workspace.yaml`` loads ``defs`` from here."""

from __future__ import annotations

from dagster import Definitions, load_assets_from_modules

from assets import api_health
from orchestration.resources import AmiliApiResource

defs = Definitions(
    assets=load_assets_from_modules([api_health]),
    resources={"amili": AmiliApiResource()},
)
