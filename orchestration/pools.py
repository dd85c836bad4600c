"""Dagster pools of the project, named once for every asset that needs them.

DuckDB allows one writing process per file, so every step that opens the pipeline database
(extract, dbt, submission, results, reconciliation, snapshot) claims a slot of one pool whose
limit is 1 in ``dagster.yaml`` (``concurrency: pools``).
"""

from __future__ import annotations

#: Every writer of the pipeline DuckDB file shares this pool (limit 1 in dagster.yaml).
PIPELINE_DB_POOL = "pipeline_duckdb"
