"""Daily partitions: one partition is one collection day in Europe/Oslo."""

from __future__ import annotations

from datetime import date, datetime

from dagster import DailyPartitionsDefinition, TimeWindow

from amili.settings import PipelineSettings, load

OSLO = "Europe/Oslo"

daily_partitions = DailyPartitionsDefinition(
    start_date=load(PipelineSettings).partition_start.isoformat(), timezone=OSLO
)


def window_days(window: TimeWindow) -> tuple[date, date]:
    """The half-open range of Oslo days ``[start, end)`` a partition window covers.

    The window's datetimes are midnights in Europe/Oslo, so their dates are the days, also
    on the 23- and 25-hour days when the clocks change.
    """
    start: datetime = window.start
    end: datetime = window.end
    return start.date(), end.date()
