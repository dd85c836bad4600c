"""A test-only code location: one writer in the project's pool, and the pool watchdog.

``tests/pipeline/test_pool_watchdog.py`` runs it with the real daemon and the real CLI. The
writer only sleeps (``SLEEP_SECONDS``), so a run can hold the pool's slot as long as the test
needs without the sandbox, dbt or a warehouse.
"""

from __future__ import annotations

import os
import time

from dagster import Definitions, asset, in_process_executor

from orchestration import dagster_fixes
from orchestration.pool_watchdog import pool_watchdog
from orchestration.pools import PIPELINE_DB_POOL

dagster_fixes.apply()  # as orchestration/definitions.py does


@asset(pool=PIPELINE_DB_POOL)
def sleepy_writer() -> None:
    """Holds the pool's slot for ``SLEEP_SECONDS`` like a long extract or dbt build."""
    time.sleep(float(os.environ.get("SLEEP_SECONDS", "1")))


defs = Definitions(assets=[sleepy_writer], sensors=[pool_watchdog], executor=in_process_executor)
