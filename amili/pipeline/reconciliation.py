"""Reconciliation checks: is every krone that was eligible on a day accounted for?

The dbt marts (``dbt_project/models/marts``) give each eligible object of a day its fate
(``rpt_object_fates``: quarantined, held, carried_forward (held, and a later day sends a
copy), changed_after_handover (Amili took it with another payload, and keeps that one),
skipped_unchanged, sent, or unaccounted; a sent one
is accepted, rejected, unconfirmed or outstanding) and sum them per day, creditor, kind and currency
(``rpt_reconciliation_daily``, with a ``balances`` flag). The functions here read those marts
for a window of days ``[start, end)`` and have no Dagster imports, so Dagster asset checks
and the CLI call them alike:

* :func:`balance_problems` returns the rows that do not balance, and the warehouse rows
  in no bucket (``rpt_source_rows``; the blocking check);
* :func:`rejection_rate` returns how many sent objects Amili rejected;
* :func:`unanswered_objects` returns the sent objects without a believed answer;
* :func:`changes_after_handover` returns the objects that changed after Amili took them;
* :func:`reconciliation_summary` renders a plain-text table per creditor and kind.

``con`` is an open DuckDB connection to the pipeline database (read-only is enough).
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

import duckdb

__all__ = [
    "BUCKETS", "FATES", "OUTCOMES", "balance_problems", "changes_after_handover",
    "reconciliation_summary", "rejection_rate", "unanswered_objects",
]

#: The buckets of rpt_reconciliation_daily, each with a ``<bucket>_count`` and
#: ``<bucket>_amount`` column, in the order they are reported. ``carried_in`` (copies carried
#: forward into the day) is part of eligible, not a term of the balance.
#: ``changed_after_handover`` counts at the warehouse's current amount (so eligible adds
#: up); the mart has what Amili holds of them beside (``_acknowledged_amount``,
#: ``_difference``).
BUCKETS: tuple[str, ...] = (
    "eligible", "quarantined", "held", "carried_forward", "changed_after_handover",
    "skipped_unchanged", "sent", "accepted", "rejected", "unconfirmed", "outstanding",
    "unaccounted", "carried_in",
)
#: The fates that eligible splits into, in counts and in amounts.
FATES: tuple[str, ...] = (
    "quarantined", "held", "carried_forward", "changed_after_handover", "skipped_unchanged",
    "sent", "unaccounted",
)
#: The outcomes that sent splits into, in counts and in amounts.
OUTCOMES: tuple[str, ...] = ("accepted", "rejected", "unconfirmed", "outstanding")
#: The batch-ready relations whose rows the marts must account for, by objectname.
_OBJECT_RELATIONS: dict[str, str] = {
    "creditor": "batch_creditors_json",
    "invoice": "batch_invoices_json",
    "payment": "batch_payments_json",
    "action": "batch_actions_json",
}
#: The raw tables the extract writes; rpt_source_rows accounts for every row of each.
SOURCE_TABLES: tuple[str, ...] = (
    "invoices", "invoice_lines", "reminders", "payments", "case_actions", "customers",
    "creditors",
)
#: The money column of each raw table (what rpt_source_rows.amount holds), NULL for none.
_SOURCE_AMOUNTS: dict[str, str] = {
    "invoices": "amount", "invoice_lines": "amount", "reminders": "fee_amount",
    "payments": "amount", "case_actions": "NULL", "customers": "NULL", "creditors": "NULL",
}
#: How many ids a source-row problem names (the mart holds all of them).
_IDS_NAMED = 10
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYS = ("partition_date", "creditor_id", "objectname", "currency")


def _schema(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"schema name {name!r} is not a plain identifier")
    return f'"{name}"'


def _plain(value: Any) -> Any:
    """A value as metadata can hold it: dates as ISO text, Decimals as exact text."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _why(row: dict[str, Any]) -> str:
    """What is wrong with one row of rpt_reconciliation_daily, in words."""
    reasons = []
    currency = row["currency"] or ""
    if row["unaccounted_count"] or row["unaccounted_amount"]:
        text = f"{row['unaccounted_count']} eligible object(s) unaccounted"
        if currency:
            text += f" ({currency} {row['unaccounted_amount']})"
        reasons.append(text)
    for kind in ("count", "amount"):
        parts = sum(row[f"{b}_{kind}"] for b in FATES)
        if row[f"eligible_{kind}"] != parts:
            reasons.append(f"eligible {kind} {row[f'eligible_{kind}']} is not the sum of its "
                           f"fates {parts} (quarantined + held + carried forward + changed "
                           "after hand-over + skipped + sent + unaccounted)")
        answered = sum(row[f"{b}_{kind}"] for b in OUTCOMES)
        if row[f"sent_{kind}"] != answered:
            reasons.append(f"sent {kind} {row[f'sent_{kind}']} is not accepted + rejected + "
                           f"unconfirmed + outstanding {answered}")
    return "; ".join(reasons) or "does not balance"


def balance_problems(
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    *,
    marts_schema: str = "marts",
    batch_schema: str = "batch",
) -> list[dict[str, Any]]:
    """The rows of ``rpt_reconciliation_daily`` in ``[start, end)`` that do not balance.

    Each is a dict of the row's columns (``partition_date``, ``creditor_id``,
    ``objectname``, ``currency``, ``<bucket>_count`` and ``<bucket>_amount`` for every
    bucket of :data:`BUCKETS`, ``balances``) plus ``problem``, a sentence saying what is
    wrong. Values are ready for Dagster metadata: counts are ints, amounts exact decimal
    text, the day ISO text.

    A mart that is missing days or is older than the batch relations cannot vouch for them,
    so a (day, creditor, kind) whose number of eligible objects in the mart differs from
    the rows of ``batch_*_json`` is reported too (``balances`` is then None). An empty list
    means every eligible object of the window is accounted for.
    """
    marts, batch = _schema(marts_schema), _schema(batch_schema)
    params = {"start": start, "end": end}
    window = "partition_date >= $start AND partition_date < $end"
    cur = con.execute(
        f"""SELECT * FROM {marts}.rpt_reconciliation_daily WHERE {window} AND NOT balances
            ORDER BY partition_date, creditor_id NULLS FIRST, objectname,
                     currency NULLS FIRST""",
        params,
    )
    columns = [d[0] for d in cur.description]
    problems = []
    for values in cur.fetchall():
        row = dict(zip(columns, values, strict=True))
        problems.append({**{k: _plain(v) for k, v in row.items()}, "problem": _why(row)})

    batch_rows = " UNION ALL ".join(
        f"SELECT partition_date, creditor_id, '{name}' AS objectname "
        f"FROM {batch}.{relation} WHERE {window}"
        for name, relation in _OBJECT_RELATIONS.items()
    )
    stale = con.execute(
        f"""WITH batch_counts AS (
                SELECT partition_date, creditor_id, objectname, count(*) AS n
                FROM ({batch_rows}) GROUP BY ALL
            ),
            mart_counts AS (
                SELECT partition_date, creditor_id, objectname, sum(eligible_count) AS n
                FROM {marts}.rpt_reconciliation_daily WHERE {window} GROUP BY ALL
            )
            SELECT coalesce(b.partition_date, m.partition_date),
                   coalesce(b.creditor_id, m.creditor_id),
                   coalesce(b.objectname, m.objectname),
                   coalesce(m.n, 0)::BIGINT AS in_mart, coalesce(b.n, 0)::BIGINT AS in_batch
            FROM batch_counts AS b
            FULL OUTER JOIN mart_counts AS m
              ON m.partition_date = b.partition_date AND m.objectname = b.objectname
             AND m.creditor_id IS NOT DISTINCT FROM b.creditor_id
            WHERE m.n IS DISTINCT FROM b.n
            ORDER BY ALL""",
        params,
    ).fetchall()
    for day, creditor_id, objectname, in_mart, in_batch in stale:
        problems.append({
            "partition_date": _plain(day), "creditor_id": creditor_id,
            "objectname": objectname, "currency": None,
            "eligible_count": int(in_mart), "balances": None,
            "problem": (
                f"the marts count {in_mart} eligible {objectname} object(s), "
                f"{batch_schema}.{_OBJECT_RELATIONS[objectname]} has {in_batch}: the marts "
                "are missing or stale for this day; rebuild them for the window"
            ),
        })
    problems += source_row_problems(con, start, end, marts_schema=marts_schema)
    return problems


def source_row_problems(
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    *,
    marts_schema: str = "marts",
    raw_schema: str = "raw",
) -> list[dict[str, Any]]:
    """The warehouse rows of ``[start, end)`` that ended in no bucket, per day and source
    table: rows of ``rpt_source_rows`` whose bucket is ``unaccounted``, and days whose
    number of rows there, or their amount, differs from the extract's ``raw`` table (a
    stale or missing mart). Each problem is a dict like :func:`balance_problems`' (``objectname`` is
    ``source:<table>``), naming up to ten of the rows' ids."""
    marts, raw = _schema(marts_schema), _schema(raw_schema)
    params = {"start": start, "end": end}
    window = "partition_date >= $start AND partition_date < $end"
    have = {name for (name,) in con.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables"
    ).fetchall()}
    if f"{marts_schema}.rpt_source_rows" not in have:
        return [{"partition_date": _plain(start), "creditor_id": None,
                 "objectname": "source", "currency": None, "balances": None,
                 "problem": f"{marts_schema}.rpt_source_rows does not exist: the warehouse "
                            "rows cannot be accounted for; rebuild the marts for the window"}]
    problems = []
    unaccounted = con.execute(
        f"""SELECT partition_date, source_table, count(*)::BIGINT,
                   list(coalesce(source_id, 'row ' || source_row) ORDER BY source_row)
                       [1:{_IDS_NAMED}]
            FROM {marts}.rpt_source_rows WHERE {window} AND bucket = 'unaccounted'
            GROUP BY ALL ORDER BY ALL""", params,
    ).fetchall()
    for day, table, count, ids in unaccounted:
        problems.append({
            "partition_date": _plain(day), "creditor_id": None,
            "objectname": f"source:{table}", "currency": None, "balances": False,
            "unaccounted_count": int(count),
            "problem": (f"{count} row(s) of the warehouse table {table} ended in no bucket "
                        f"(not sent, held, quarantined or otherwise accounted for): "
                        f"{', '.join(ids)}{' ...' if count > len(ids) else ''}"),
        })
    counts = " UNION ALL ".join(
        f"SELECT partition_date, '{table}' AS source_table, count(*) AS n, "
        f"sum(try_cast({_SOURCE_AMOUNTS[table]} AS DECIMAL(38, 6))) AS amount "
        f"FROM {raw}.{table} WHERE {window} GROUP BY ALL"
        for table in SOURCE_TABLES if f"{raw_schema}.{table}" in have
    )
    if not counts:
        return problems
    stale = con.execute(
        f"""WITH raw_counts AS ({counts}),
            mart_counts AS (
                SELECT partition_date, source_table, count(*) AS n, sum(amount) AS amount
                FROM {marts}.rpt_source_rows WHERE {window} GROUP BY ALL
            )
            SELECT coalesce(r.partition_date, m.partition_date),
                   coalesce(r.source_table, m.source_table),
                   coalesce(r.n, 0)::BIGINT, coalesce(m.n, 0)::BIGINT, r.amount, m.amount
            FROM raw_counts AS r FULL OUTER JOIN mart_counts AS m
              ON m.partition_date = r.partition_date AND m.source_table = r.source_table
            WHERE r.n IS DISTINCT FROM m.n OR r.amount IS DISTINCT FROM m.amount
            ORDER BY ALL""", params,
    ).fetchall()
    for day, table, in_raw, in_mart, raw_amount, mart_amount in stale:
        amounts = ("" if raw_amount == mart_amount else
                   f" (amounts {_plain(raw_amount)} and {_plain(mart_amount)})")
        problems.append({
            "partition_date": _plain(day), "creditor_id": None,
            "objectname": f"source:{table}", "currency": None, "balances": None,
            "problem": (f"the extract read {in_raw} row(s) of the warehouse table {table}, "
                        f"{marts_schema}.rpt_source_rows accounts for {in_mart}{amounts}: the "
                        "marts are missing or stale for this day; rebuild them for the window"),
        })
    return problems


def rejection_rate(
    con: duckdb.DuckDBPyConnection, start: date, end: date, *, marts_schema: str = "marts"
) -> tuple[int, int, float]:
    """``(sent, rejected, rejected / sent)`` over ``[start, end)``, all kinds of objects.

    Sent objects are those whose fate is ``sent`` (their latest answer counts); the rate is
    0.0 when nothing was sent.
    """
    sent, rejected = con.execute(
        f"""SELECT coalesce(sum(sent_count), 0)::BIGINT, coalesce(sum(rejected_count), 0)::BIGINT
            FROM {_schema(marts_schema)}.rpt_reconciliation_daily
            WHERE partition_date >= $start AND partition_date < $end""",
        {"start": start, "end": end},
    ).fetchone() or (0, 0)
    sent, rejected = int(sent), int(rejected)
    return sent, rejected, (rejected / sent if sent else 0.0)


def unanswered_objects(
    con: duckdb.DuckDBPyConnection, start: date, end: date, *, marts_schema: str = "marts"
) -> list[dict[str, Any]]:
    """Per day, creditor, kind and currency of ``[start, end)``: the sent objects Amili has
    not (believably) answered yet, ``outstanding`` (no answer: a failed, unposted or
    in-doubt batch) and ``unconfirmed`` (an answer that did not account for them).

    They balance (they are part of ``sent``), but nobody may take them for handed over: an
    empty list means every sent object of the window was accepted or rejected. Values are
    ready for metadata (ISO days, exact decimal text)."""
    return _daily_rows(
        con, start, end, marts_schema,
        ("outstanding_count", "outstanding_amount", "unconfirmed_count", "unconfirmed_amount"),
        "outstanding_count + unconfirmed_count > 0")


def changes_after_handover(
    con: duckdb.DuckDBPyConnection, start: date, end: date, *, marts_schema: str = "marts"
) -> list[dict[str, Any]]:
    """Per day, creditor, kind and currency of ``[start, end)``: the objects Amili took
    whose payload has changed in the warehouse since (``changed_after_handover``), their
    current amount, the amount Amili holds for them and the difference (current less held).

    They balance (a fate of their own, at the current amount), and were not sent again:
    Amili keeps what it took, and the Batch API documents no way to change it, so someone
    must settle the difference with Amili. Values are ready for metadata."""
    return _daily_rows(
        con, start, end, marts_schema,
        ("changed_after_handover_count", "changed_after_handover_amount",
         "changed_after_handover_acknowledged_amount", "changed_after_handover_difference"),
        "changed_after_handover_count > 0")


def _daily_rows(
    con: duckdb.DuckDBPyConnection, start: date, end: date, marts_schema: str,
    columns: tuple[str, ...], condition: str,
) -> list[dict[str, Any]]:
    """The rows of ``rpt_reconciliation_daily`` in ``[start, end)`` that meet ``condition``:
    their keys and ``columns``, ready for metadata, in key order."""
    cur = con.execute(
        f"""SELECT {", ".join(_KEYS)}, {", ".join(columns)}
            FROM {_schema(marts_schema)}.rpt_reconciliation_daily
            WHERE partition_date >= $start AND partition_date < $end AND ({condition})
            ORDER BY partition_date, creditor_id NULLS FIRST, objectname,
                     currency NULLS FIRST""",
        {"start": start, "end": end},
    )
    names = [d[0] for d in cur.description]
    return [{k: _plain(v) for k, v in zip(names, values, strict=True)}
            for values in cur.fetchall()]


#: Columns of the summary table: (header, bucket).
_SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("eligible", "eligible"), ("quarantined", "quarantined"), ("held", "held"),
    ("carried", "carried_forward"), ("changed", "changed_after_handover"),
    ("skipped", "skipped_unchanged"), ("sent", "sent"),
    ("accepted", "accepted"),
    ("rejected", "rejected"), ("unconfirmed", "unconfirmed"), ("outstanding", "outstanding"),
    ("unaccounted", "unaccounted"),
)
_KIND_ORDER = {name: i for i, name in enumerate(_OBJECT_RELATIONS)}


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def reconciliation_summary(
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    *,
    currency: str = "NOK",
    marts_schema: str = "marts",
) -> str:
    """A plain-text table of ``[start, end)`` per creditor and kind of object.

    For each creditor and kind (creditor, invoice, payment, action) one line of counts per
    bucket, and for invoices and payments a second line with their amounts in ``currency``
    (NOK); amounts in other currencies are listed below the table. Ends with whether every
    row of the window balances.
    """
    cur = con.execute(
        f"""SELECT * FROM {_schema(marts_schema)}.rpt_reconciliation_daily
            WHERE partition_date >= $start AND partition_date < $end""",
        {"start": start, "end": end},
    )
    columns = [d[0] for d in cur.description]
    rows = [dict(zip(columns, values, strict=True)) for values in cur.fetchall()]
    last = date.fromordinal(end.toordinal() - 1)
    title = (f"Reconciliation {start.isoformat()}" if last <= start
             else f"Reconciliation {start.isoformat()} .. {last.isoformat()}")
    if not rows:
        return f"{title}: no reconciliation rows (nothing eligible, or the marts not built)"

    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    amounts: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(
        lambda: defaultdict(Decimal))
    with_amounts: set[tuple[str, str]] = set()
    other: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    unbalanced = 0
    for row in rows:
        key = (row["creditor_id"] or "?", row["objectname"])
        unbalanced += not row["balances"]
        for _, bucket in _SUMMARY_COLUMNS:
            counts[key][bucket] += row[f"{bucket}_count"]
        if row["objectname"] in ("invoice", "payment"):
            with_amounts.add(key)
            target = amounts[key] if row["currency"] == currency else other[
                row["currency"] or "(none)"]
            for _, bucket in _SUMMARY_COLUMNS:
                target[bucket] += row[f"{bucket}_amount"]

    keys = sorted(counts, key=lambda k: (k[0], _KIND_ORDER.get(k[1], 99), k[1]))
    total_counts: dict[str, int] = defaultdict(int)
    total_amounts: dict[str, Decimal] = defaultdict(Decimal)
    table: list[list[str]] = []
    for key in keys:
        table.append([key[0], key[1], *(str(counts[key][b]) for _, b in _SUMMARY_COLUMNS)])
        for _, bucket in _SUMMARY_COLUMNS:
            total_counts[bucket] += counts[key][bucket]
        if key in with_amounts:
            table.append(["", currency,
                          *(_money(amounts[key][b]) for _, b in _SUMMARY_COLUMNS)])
            for _, bucket in _SUMMARY_COLUMNS:
                total_amounts[bucket] += amounts[key][bucket]
    table.append(["total", "objects", *(str(total_counts[b]) for _, b in _SUMMARY_COLUMNS)])
    table.append(["", currency, *(_money(total_amounts[b]) for _, b in _SUMMARY_COLUMNS)])

    header = ["creditor", "kind", *(h for h, _ in _SUMMARY_COLUMNS)]
    out = [f"{title} (counts; amounts of invoices and payments in {currency})",
           *_text_table(header, table, left=2)]
    for code in sorted(other):
        parts = ", ".join(f"{b} {_money(v)}" for b, v in other[code].items() if v)
        out.append(f"in {code}: {parts or 'no amounts'}")
    changed = [row for row in rows if row.get("changed_after_handover_count")]
    if changed:
        held: dict[str, Decimal] = defaultdict(Decimal)
        difference: dict[str, Decimal] = defaultdict(Decimal)
        for row in changed:
            code = row["currency"] or "(none)"
            held[code] += row["changed_after_handover_acknowledged_amount"]
            difference[code] += row["changed_after_handover_difference"]
        out.append(
            f"changed after hand-over (not sent again; Amili keeps what it took): "
            f"{sum(row['changed_after_handover_count'] for row in changed)} object(s); "
            + ", ".join(f"{code}: Amili holds {_money(held[code])}, difference (now less "
                        f"held) {_money(difference[code])}" for code in sorted(held)))
    out.append(
        f"balances: all {len(rows)} rows" if not unbalanced else
        f"DOES NOT BALANCE: {unbalanced} of {len(rows)} rows (see balance_problems)"
    )
    return "\n".join(out)


#: The order source-row buckets are shown in; others (a fate added later) follow by name.
_SOURCE_BUCKET_ORDER = (
    "sent", "skipped_unchanged", "held", "carried_forward", "quarantined",
    "changed_after_handover", "with_invoices", "not_needed", "not_handed_over",
    "netted_before_handover", "unaccounted",
)


def source_summary(
    con: duckdb.DuckDBPyConnection, start: date, end: date, *, marts_schema: str = "marts"
) -> str:
    """A plain-text table of ``[start, end)``: per warehouse table, how many rows the
    extract read and in which bucket each ended (``rpt_source_reconciliation``)."""
    counts = con.execute(
        f"""SELECT source_table, bucket, sum(row_count)::BIGINT
            FROM {_schema(marts_schema)}.rpt_source_reconciliation
            WHERE partition_date >= $start AND partition_date < $end
            GROUP BY ALL""",
        {"start": start, "end": end},
    ).fetchall()
    if not counts:
        return "Warehouse rows: none read (nothing extracted, or the marts not built)"
    by_table: dict[str, dict[str, int]] = defaultdict(dict)
    for table_name, bucket, n in counts:
        by_table[table_name][bucket] = int(n)
    present = {b for buckets in by_table.values() for b in buckets}
    order = [b for b in _SOURCE_BUCKET_ORDER if b in present] + sorted(
        present - set(_SOURCE_BUCKET_ORDER))
    header = ["table", "read", *(b.replace("_", " ") for b in order)]
    tables = [t for t in SOURCE_TABLES if t in by_table] + sorted(
        set(by_table) - set(SOURCE_TABLES))
    body = [[t, str(sum(by_table[t].values())), *(str(by_table[t].get(b, 0)) for b in order)]
            for t in tables]
    unaccounted = sum(by_table[t].get("unaccounted", 0) for t in by_table)
    return "\n".join([
        "Warehouse rows (every row the extract read, by where it ended)",
        *_text_table(header, body, left=1),
        "every row is accounted for" if not unaccounted else
        f"{unaccounted} ROW(S) UNACCOUNTED (see marts.rpt_source_rows)",
    ])


def _text_table(header: list[str], body: list[list[str]], *, left: int) -> list[str]:
    """Lines of a plain-text table: the first ``left`` columns aligned left, the figures
    right, a rule under the header."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join([cell.ljust(width) if i < left else cell.rjust(width)
                          for i, (cell, width) in enumerate(zip(cells, widths, strict=True))]
                         ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in body)]
