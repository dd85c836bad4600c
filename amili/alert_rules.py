"""When the figures call for someone: a rising rejection rate, a backlog of unanswered or held
objects. Read from the reporting snapshot, per day and currency.

Why the snapshot (``data/reporting.duckdb``) and not the pipeline's own file: the pipeline
file admits one writing process, and any reader holding it makes the daily run's writers
wait or fail (``/work/shared/dagster-dbt-notes.md``); the snapshot is a copy published after
every run by an atomic rename, which a reader can hold without blocking anybody. Its figures
are those of the latest run, which is what an alert is about.

Each condition has a stable ``key`` (kind, day, currency): the sensors alert once per key,
not on every tick. Rates compare counts of objects; amounts stay per currency, as Decimal,
and are never added across currencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from amili.reporting.queries import connect_snapshot
from amili.settings import AlertSettings

__all__ = ["Condition", "backlog_conditions", "read_conditions", "rejection_conditions"]

#: Creditor and action objects have no amount and so no currency: their rows are grouped
#: under this label.
NO_CURRENCY = "no currency"

_DAILY = "marts.rpt_reconciliation_daily"


@dataclass(frozen=True)
class Condition:
    """One day and currency that calls for an alert: ``text`` says it to a person,
    ``details`` to a machine (exact amounts as Decimal)."""

    key: str
    kind: str
    day: date
    currency: str
    text: str
    details: dict[str, Any] = field(default_factory=dict)


def _label(currency: str | None) -> str:
    return currency or NO_CURRENCY


def _who(label: str) -> str:
    """How a person reads the currency label of a row."""
    return "creditors and actions (no amount)" if label == NO_CURRENCY else label


def _money(amount: Decimal, currency: str) -> str:
    """An exact amount with its currency (none for the objects that carry no amount)."""
    return "" if currency == NO_CURRENCY else f", {amount:.2f} {currency}"


def _percent(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def rejection_conditions(
    con: duckdb.DuckDBPyConnection, settings: AlertSettings
) -> list[Condition]:
    """Days (of the last ``alert_lookback_days``) and currencies where Amili rejected more
    than ``alert_rejection_rate`` of the objects sent, or a rate ``alert_rejection_rise``
    above that currency's rate over the ``alert_rejection_baseline_days`` before: a rising
    rate. Days with fewer than ``alert_rejection_min_sent`` objects sent are left out (two
    rejections of three objects are no trend)."""
    rows = con.execute(
        f"""WITH per_day AS (
                SELECT partition_date AS day, currency,
                       sum(sent_count)::BIGINT AS sent, sum(rejected_count)::BIGINT AS rejected,
                       sum(sent_amount) AS sent_amount, sum(rejected_amount) AS rejected_amount
                FROM {_DAILY} GROUP BY ALL
            ),
            with_base AS (
                SELECT *,
                       coalesce(sum(sent) OVER w, 0)::BIGINT AS base_sent,
                       coalesce(sum(rejected) OVER w, 0)::BIGINT AS base_rejected
                FROM per_day
                WINDOW w AS (PARTITION BY currency ORDER BY day
                             RANGE BETWEEN to_days($baseline) PRECEDING
                                       AND INTERVAL 1 DAY PRECEDING)
            )
            SELECT day, currency, sent, rejected, sent_amount, rejected_amount,
                   base_sent, base_rejected
            FROM with_base
            WHERE day > (SELECT max(partition_date) FROM {_DAILY}) - $lookback::INTEGER
              AND sent >= $min_sent
            ORDER BY day, currency NULLS LAST""",
        {"baseline": settings.alert_rejection_baseline_days,
         "lookback": settings.alert_lookback_days,
         "min_sent": settings.alert_rejection_min_sent},
    ).fetchall()
    creditors = _by_creditor(con, "sum(rejected_count)", settings)
    stale = _stale_days(con)
    found = []
    for day, currency, sent, rejected, sent_amount, rejected_amount, base_sent, base_rej in rows:
        rate = rejected / sent
        base_rate = base_rej / base_sent if base_sent >= settings.alert_rejection_min_sent else None
        above = rate > settings.alert_rejection_rate
        rising = base_rate is not None and rate - base_rate > settings.alert_rejection_rise
        if not (above or rising):
            continue
        label = _label(currency)
        why = []
        if above:
            why.append(f"above the alert level of {_percent(settings.alert_rejection_rate)}")
        if rising:
            why.append(f"up from {_percent(base_rate)} over the "
                       f"{settings.alert_rejection_baseline_days} days before")
        elif base_rate is not None:
            why.append(f"{_percent(base_rate)} over the "
                       f"{settings.alert_rejection_baseline_days} days before")
        if label == NO_CURRENCY:
            what = (f"{day}, {_who(label)}: Amili rejected {rejected} of "
                    f"{sent} objects sent ({_percent(rate)})")
        else:
            what = (f"{day}, {label}: Amili rejected {rejected} of {sent} objects sent "
                    f"({_percent(rate)}), {rejected_amount:.2f} of {sent_amount:.2f} {label}")
        found.append(Condition(
            key=f"rejection_rate:{day}:{label}", kind="rejection_rate", day=day,
            currency=label,
            text=f"{what}; {', '.join(why)}{_suffix(day, creditors.get((day, label)), stale)}",
            details={"day": day, "currency": label, "sent": sent, "rejected": rejected,
                     "rate": round(rate, 4), "sent_amount": sent_amount,
                     "rejected_amount": rejected_amount,
                     "baseline_rate": None if base_rate is None else round(base_rate, 4)},
        ))
    return found


def backlog_conditions(
    con: duckdb.DuckDBPyConnection, settings: AlertSettings
) -> list[Condition]:
    """Days (of the last ``alert_lookback_days``) and currencies with more than
    ``alert_unanswered_max`` sent objects Amili has not answered for (outstanding: their
    batch failed, was not sent or is in doubt; unconfirmed: the answer did not say), or more
    than ``alert_held_max`` objects held back (a payment or action waiting for an invoice
    Amili has not acknowledged)."""
    rows = con.execute(
        f"""SELECT partition_date AS day, currency,
                   sum(outstanding_count)::BIGINT, sum(unconfirmed_count)::BIGINT,
                   sum(outstanding_amount + unconfirmed_amount), sum(held_count)::BIGINT,
                   sum(held_amount)
            FROM {_DAILY}
            WHERE partition_date > (SELECT max(partition_date) FROM {_DAILY})
                                   - $lookback::INTEGER
            GROUP BY ALL
            ORDER BY day, currency NULLS LAST""",
        {"lookback": settings.alert_lookback_days},
    ).fetchall()
    batches = _unanswered_batches(con, settings)
    unanswered_by = _by_creditor(con, "sum(outstanding_count + unconfirmed_count)", settings)
    held_by = _by_creditor(con, "sum(held_count)", settings)
    stale = _stale_days(con)
    found = []
    for day, currency, outstanding, unconfirmed, unanswered_amount, held, held_amount in rows:
        label = _label(currency)
        unanswered = outstanding + unconfirmed
        if unanswered > settings.alert_unanswered_max:
            found.append(Condition(
                key=f"unanswered:{day}:{label}", kind="unanswered", day=day, currency=label,
                text=(f"{day}, {_who(label)}: {unanswered} sent object(s) without an answer from "
                      f"Amili ({outstanding} outstanding, {unconfirmed} unconfirmed"
                      f"{_money(unanswered_amount, label)}); Amili may not have them: the next "
                      "run of the day sends them again"
                      + (f"; batches: {batches[day]}" if day in batches else "")
                      + _suffix(day, unanswered_by.get((day, label)), stale)),
                details={"day": day, "currency": label, "outstanding": outstanding,
                         "unconfirmed": unconfirmed, "amount": unanswered_amount},
            ))
        if held > settings.alert_held_max:
            found.append(Condition(
                key=f"held:{day}:{label}", kind="held", day=day, currency=label,
                text=(f"{day}, {_who(label)}: {held} object(s) held back"
                      f"{_money(held_amount, label)}, waiting for an invoice Amili has not "
                      "acknowledged" + _suffix(day, held_by.get((day, label)), stale)),
                details={"day": day, "currency": label, "held": held, "amount": held_amount},
            ))
    return found


def _unanswered_batches(
    con: duckdb.DuckDBPyConnection, settings: AlertSettings
) -> dict[date, str]:
    """Per day, the unanswered batches by state, e.g. ``1 failed (HTTP 400)``."""
    if not _exists(con, "marts", "rpt_unanswered_batches"):
        return {}
    rows = con.execute(
        f"""SELECT partition_date, state, http_status, count(*)
            FROM marts.rpt_unanswered_batches
            WHERE partition_date > (SELECT max(partition_date) FROM {_DAILY})
                                   - $lookback::INTEGER
            GROUP BY ALL ORDER BY ALL""",
        {"lookback": settings.alert_lookback_days},
    ).fetchall()
    by_day: dict[date, list[str]] = {}
    for day, state, http_status, count in rows:
        by_day.setdefault(day, []).append(
            f"{count} {state}" + (f" (HTTP {http_status})" if http_status else ""))
    return {day: ", ".join(parts) for day, parts in by_day.items()}


def _by_creditor(
    con: duckdb.DuckDBPyConnection, measure: str, settings: AlertSettings
) -> dict[tuple[date, str], str]:
    """Per day and currency label, ``measure`` (a sum over the mart) per creditor where it is
    not 0, largest first: ``CR01 4, CR02 1``. Tells a controller whose receivables these are."""
    rows = con.execute(
        f"""SELECT day, currency, string_agg(creditor_id || ' ' || n, ', '
                                               ORDER BY n DESC, creditor_id)
            FROM (SELECT partition_date AS day, currency, creditor_id, {measure} AS n
                  FROM {_DAILY}
                  WHERE partition_date > (SELECT max(partition_date) FROM {_DAILY})
                                         - $lookback::INTEGER
                  GROUP BY ALL HAVING {measure} > 0)
            GROUP BY ALL""",
        {"lookback": settings.alert_lookback_days},
    ).fetchall()
    return {(day, _label(currency)): text for day, currency, text in rows}


def _stale_days(con: duckdb.DuckDBPyConnection) -> set[date]:
    """Days whose marts were not rebuilt after their latest submission (the snapshot's
    ``report.day_status``): their figures may be out of date, and an alert says so."""
    if not _exists(con, "report", "day_status"):
        return set()
    return {day for (day,) in con.execute(
        "SELECT partition_date FROM report.day_status WHERE status = 'stale'").fetchall()}


def _suffix(day: date, creditors: str | None, stale: set[date]) -> str:
    """What follows a condition's line: the creditors, and a warning on a stale day."""
    text = f"; by creditor: {creditors}" if creditors else ""
    if day in stale:
        text += (" (this day's marts were not rebuilt after its latest submission: the "
                 "figures may be out of date)")
    return text


def _exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
        [schema, name]).fetchone()[0] > 0


def read_conditions(
    snapshot: str | Path, settings: AlertSettings, *, rejections: bool, backlog: bool
) -> list[Condition]:
    """The conditions of the snapshot (opened read-only, for as long as the queries take);
    none while it holds no reconciliation mart yet (a fresh pipeline)."""
    with connect_snapshot(snapshot) as con:
        if not _exists(con, "marts", "rpt_reconciliation_daily"):
            return []
        found = rejection_conditions(con, settings) if rejections else []
        return found + (backlog_conditions(con, settings) if backlog else [])
