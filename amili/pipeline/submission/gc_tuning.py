"""Python's cycle collector, tuned while a window of days streams (see
:func:`_collector_for_streaming`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Allocations (net) between two collections of Python's youngest generation while a day
#: streams; Python's default is 700.
_GC_YOUNG_THRESHOLD = 10_000


@contextmanager
def _collector_for_streaming() -> Iterator[None]:
    """Python's cycle collector tuned for the day's stream, and restored afterwards.

    Why: each of a day's rows leaves a tuple or two that live until its batch is written. At
    the default thresholds a large day ran over a thousand young and several full
    collections; a full one walks every object of the process, and in a Dagster run worker
    that is Dagster's heap too (figures in ``docs/performance.md``). So the objects that
    exist when the step starts are frozen (left out of the walks; they are not the step's
    garbage) and the young generation is collected less often. Cyclic garbage is
    still collected, in fewer, larger passes. Left alone if the caller froze objects itself.
    """
    threshold = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(threshold[0], _GC_YOUNG_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if freeze:
            gc.unfreeze()
