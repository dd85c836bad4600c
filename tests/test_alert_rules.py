"""The alert rules' arithmetic on a small snapshot written by hand (a real DuckDB file, read
through the same read-only connection the sensors use): a rate that rises without crossing
the alert level, the minimum sent, the look-back, held objects, one currency at a time.
tests/test_alert_sensors.py runs the same rules on a real day of the pipeline."""

from __future__ import annotations

import os
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from amili.alert_rules import read_conditions
from amili.settings import AlertSettings, load

DAY = date(2026, 11, 24)


@pytest.fixture(autouse=True)
def _default_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults, whatever the machine's environment sets."""
    for name in [n for n in os.environ if n.startswith("AMILI_ALERT_")]:
        monkeypatch.delenv(name)


def _snapshot(path: Path, rows: list[tuple]) -> Path:
    """marts.rpt_reconciliation_daily with the columns the rules read, one row per
    (day, currency[, creditor]): sent, rejected, sent and rejected amounts, held count and
    amount (creditor CR01 unless a row names another)."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute("""CREATE TABLE marts.rpt_reconciliation_daily (
            partition_date DATE, currency VARCHAR, sent_count BIGINT, rejected_count BIGINT,
            sent_amount DECIMAL(38, 2), rejected_amount DECIMAL(38, 2),
            outstanding_count BIGINT, unconfirmed_count BIGINT,
            outstanding_amount DECIMAL(38, 2), unconfirmed_amount DECIMAL(38, 2),
            held_count BIGINT, held_amount DECIMAL(38, 2),
            creditor_id VARCHAR DEFAULT 'CR01')""")
        con.executemany(
            "INSERT INTO marts.rpt_reconciliation_daily VALUES "
            "(?, ?, ?, ?, ?, ?, 0, 0, 0, 0, ?, ?, ?)",
            [row if len(row) == 9 else (*row, "CR01") for row in rows])
    return path


def _day(days_before: int) -> date:
    return DAY - timedelta(days=days_before)


def test_a_rising_rate_alerts_below_the_level_and_each_currency_on_its_own(
    tmp_path: Path
) -> None:
    rows = [
        # NOK: 2 % on the three days before, 8 % today: below 10 %, but 6 points up
        *[(_day(n), "NOK", 100, 2, "10000.00", "200.00", 0, "0") for n in (1, 2, 3)],
        # (two creditors: 60 sent, 6 rejected and 40 sent, 2 rejected)
        (DAY, "NOK", 60, 6, "7000.00", "700.00", 0, "0", "CR01"),
        (DAY, "NOK", 40, 2, "5000.00", "260.50", 0, "0", "CR02"),
        # ten days ago NOK was bad: outside the look-back and outside today's baseline
        (_day(10), "NOK", 100, 50, "9000.00", "4500.00", 0, "0"),
        # EUR: 12 % today with no history: above the level
        (DAY, "EUR", 50, 6, "5000.00", "600.00", 0, "0"),
        # SEK: everything rejected, but only 3 sent: too few to mean anything
        (DAY, "SEK", 3, 3, "300.00", "300.00", 0, "0"),
        # creditors and actions (no currency): none rejected
        (DAY, None, 30, 0, "0.00", "0.00", 0, "0"),
    ]
    snapshot = _snapshot(tmp_path / "reporting.duckdb", rows)
    found = read_conditions(snapshot, load(AlertSettings), rejections=True, backlog=False)
    assert [c.key for c in found] == [f"rejection_rate:{DAY}:EUR", f"rejection_rate:{DAY}:NOK"]
    eur, nok = found
    assert nok.text == (f"{DAY}, NOK: Amili rejected 8 of 100 objects sent (8.0 %), "
                        "960.50 of 12000.00 NOK; up from 2.0 % over the 7 days before; "
                        "by creditor: CR01 6, CR02 2")
    assert eur.text == (f"{DAY}, EUR: Amili rejected 6 of 50 objects sent (12.0 %), "
                        "600.00 of 5000.00 EUR; above the alert level of 10.0 %; "
                        "by creditor: CR01 6")
    assert nok.details["rejected_amount"] == Decimal("960.50")  # its own currency only
    assert nok.details["baseline_rate"] == 0.02

    # a wider tolerance for rises: NOK no longer calls for an alert, EUR still does
    calmer = load(AlertSettings, alert_rejection_rise=0.1)
    assert [c.currency for c in read_conditions(
        snapshot, calmer, rejections=True, backlog=False)] == ["EUR"]
    # a longer look-back reaches the bad day ten days ago
    longer = load(AlertSettings, alert_lookback_days=11)
    assert f"rejection_rate:{_day(10)}:NOK" in {c.key for c in read_conditions(
        snapshot, longer, rejections=True, backlog=False)}


def test_held_objects_are_a_backlog_per_currency_above_the_setting(tmp_path: Path) -> None:
    rows = [
        (DAY, "NOK", 10, 0, "1000.00", "0.00", 2, "100.50"),
        (DAY, "EUR", 10, 0, "1000.00", "0.00", 0, "0.00"),
        (_day(1), None, 10, 0, "0.00", "0.00", 1, "0.00", "CR07"),  # an action: no amount
    ]
    snapshot = _snapshot(tmp_path / "reporting.duckdb", rows)
    with duckdb.connect(str(snapshot)) as con:  # the day before is stale in the snapshot
        con.execute("CREATE SCHEMA report")
        con.execute("CREATE TABLE report.day_status AS SELECT * FROM (VALUES "
                    "($before, 'stale'), ($day, 'current')) AS t(partition_date, status)",
                    {"before": _day(1), "day": DAY})
    found = read_conditions(snapshot, load(AlertSettings), rejections=False, backlog=True)
    assert [(c.key, c.text) for c in found] == [
        (f"held:{_day(1)}:no currency",
         f"{_day(1)}, creditors and actions (no amount): 1 object(s) held back, waiting for an "
         "invoice Amili has not acknowledged; by creditor: CR07 1 (this day's marts were not "
         "rebuilt after its latest submission: the figures may be out of date)"),
        (f"held:{DAY}:NOK", f"{DAY}, NOK: 2 object(s) held back, 100.50 NOK, waiting for an "
                            "invoice Amili has not acknowledged; by creditor: CR01 2"),
    ]
    tolerant = load(AlertSettings, alert_held_max=2)
    assert read_conditions(snapshot, tolerant, rejections=False, backlog=True) == []


def test_a_snapshot_without_the_marts_has_no_conditions(tmp_path: Path) -> None:
    path = tmp_path / "reporting.duckdb"
    duckdb.connect(str(path)).close()
    assert read_conditions(path, load(AlertSettings), rejections=True, backlog=True) == []
