"""A fix to Dagster 1.13's in-process executor while a step waits for a pool slot.

Seen here (tests/pipeline/test_pool_watchdog.py): a run whose step waits for the writers' pool
used 60-100 % of a core and ignored SIGTERM and SIGINT (and so the UI's *Terminate*, which sends
SIGINT to the run worker). Both come from the in-process executor's idle loop
(``dagster/_core/execution/plan/execute_plan.py``), which calls
``ActiveExecution.sleep_til_ready()`` between attempts to claim the slot:

* ``InstanceConcurrencyContext.interval_to_next_pending_claim_check`` returns
  ``min([0, ...])``, never more than 0, so ``sleep_til_ready`` never sleeps and the loop spins
  (dagster-io/dagster#20367 described the same and was closed unmerged; the constant
  ``CONCURRENCY_CLAIM_BLOCKED_INTERVAL = 1`` in ``active.py`` is defined but unused).
* The run worker captures SIGTERM/SIGINT and honours them only inside a step; the multiprocess
  executor checks for them in its loop, the in-process loop does not.

The replacement below is Dagster's method plus those two things: it raises the interrupt as
Dagster does inside a step (the run then ends as interrupted and its pending claims are
dropped), and it sleeps up to a second while steps wait for a slot. Only that loop calls the
method. It is applied for Dagster 1.13 only; the test fails if a later version still spins.
"""

from __future__ import annotations

import time

import dagster
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.execution.plan.active import ActiveExecution
from dagster._utils.interrupts import pop_captured_interrupt

#: Longest idle sleep while a step waits for a slot: how soon a signal or a freed slot is seen.
#: Dagster's own backoff between claim attempts (1-15 s) is unchanged.
IDLE_SLEEP_SECONDS = 1.0


def _sleep_til_ready(self: ActiveExecution) -> None:
    """Dagster's ``sleep_til_ready``, but interruptible and sleeping while blocked on a pool."""
    if pop_captured_interrupt():
        raise DagsterExecutionInterruptedError("Interrupted while waiting for a pool slot.")
    wait = self.sleep_interval()
    concurrency = self._instance_concurrency_context
    if concurrency is not None and concurrency.has_pending_claims():
        wait = IDLE_SLEEP_SECONDS if wait <= 0 else min(wait, IDLE_SLEEP_SECONDS)
    if wait > 0:
        time.sleep(wait)


def apply() -> None:
    """Installs the fix in this process (a run worker imports the definitions first)."""
    if dagster.__version__.startswith("1.13."):
        ActiveExecution.sleep_til_ready = _sleep_til_ready  # type: ignore[method-assign]
