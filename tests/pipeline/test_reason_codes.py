"""Reason codes: one problem of many rows is one code, with each row's value in its own column.

Real rows through the real submission (loopback sandbox, DuckDB file), the real daily job
(Dagster, dbt) for the marts; the catalogue's SQL and Python held equal on a corpus.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
import httpx
import pytest

from amili import reasons
from amili.pipeline.results import publish_results
from amili.reporting.snapshot import NORMALIZE_REASON
from amili.warehouse.demo import generate_demo_warehouse
from tests.conftest import SandboxAdmin, SandboxServer
from tests.pipeline.test_daily_job import run_job
from tests.pipeline.test_submission import (
    DAY,
    NEXT,
    ClientFactory,
    Inputs,
    dumps,
    invoice_payload,
    submit_window,
)

#: One text per pattern of the catalogue, with the code and value it must give.
CORPUS: list[tuple[str, str, str | None]] = [
    ("payment: the payments row has no invoice_id: it pays no case", "reference_missing", None),
    ("invoice: the row has no invoice_id", "id_missing", "invoice_id"),
    ("invoice: invoice_id 'INV-1' appears 2 times on 2026-11-24; every row needs its own id",
     "id_repeated", "INV-1"),
    ("invoice: invoice_lines line 3 appears 2 times", "line_repeated", "3"),
    ("invoice.uniqueSourceInvoiceId: 'INV-X' differs from the row's invoice_id 'INV-Y'; they "
     "must be equal so answers map to the row", "unique_id_differs", "INV-X"),
    ("invoice: the row has no payload", "payload_missing", None),
    ("invoice: the payload is not valid JSON: unexpected end", "payload_invalid", None),
    ("invoice: the payload is not a JSON object", "payload_invalid", None),
    ("invoice.originalInvoiceAmount: must be a JSON number, not a string ('12.50')",
     "amount_not_a_number", "12.50"),
    ("invoice: invoices.amount 12,5 is not a number", "amount_not_a_number", "12,5"),
    ("invoice: invoices.amount 1e17 is beyond the largest amount the API carries",
     "amount_too_large", "1e17"),
    ("invoice: line 2: invoice_lines.amount 10.005 has more than two decimals: the API "
     "carries whole øre", "amount_too_precise", "10.005"),
    ("payment.amount: Decimal input should have no more than 2 decimal places (1.234)",
     "amount_too_precise", "1.234"),
    ("invoice.originalInvoiceAmount: Value error, amount must not be negative (-1671.00)",
     "amount_negative", "-1671.00"),
    ("invoice.claims: the sum of remainingAmount (-231.18) must be greater than 0",
     "claims_not_positive", "-231.18"),
    ("invoice.claims: the PRINCIPAL claims' remainingAmount (9999.00) exceeds "
     "originalInvoiceAmount (100.00)", "principal_exceeds_invoice", "9999.00"),
    ("payment.amount: must be greater than 0", "amount_zero", None),
    ("invoice: the payments registered since the collection day sum to 1.0001, which the API "
     "cannot carry", "paid_amount_invalid", "1.0001"),
    ("payment[0].amount: 500.00 exceeds the open amount 100.00 of invoice 'L1'",
     "payment_exceeds_open_amount", "500.00"),
    ("invoice.currency: 'NKR' is not a known ISO 4217 currency code", "currency_unknown", "NKR"),
    ("invoice.ocrReferenceNumber: '000015880116' is not a valid KID: check digit is not valid "
     "MOD10 or MOD11", "kid_invalid", "000015880116"),
    ("invoice.debtors[0].organizationNumber: '926598812' is not a valid Norwegian organisation "
     "number (organisasjonsnummer)", "organisation_number_invalid", "926598812"),
    ("invoice.debtors[0].identificationNumber: '15108695077' is not a valid Norwegian national "
     "identity number (fødselsnummer)", "national_id_invalid", "15108695077"),
    ("creditor.iban: 'NO00' is not a valid IBAN", "bank_account_invalid", "NO00"),
    ("invoice.debtors[0].emails[0].value: 'mari hovland@x no' is not a valid e-mail address "
     "(The email address contains invalid characters)", "email_invalid", "mari hovland@x no"),
    ("invoice.debtors[0].addresses[0].zipCode: '12' is not a Norwegian postcode (4 digits)",
     "postcode_invalid", "12"),
    ("invoice.dueDate: 2026-09-01T00:00:00.000Z is before invoiceDate 2026-10-01T00:00:00.000Z",
     "due_before_invoice_date", "2026-09-01T00:00:00.000Z"),
    ("invoice.debtors[0]: a PRIVATE debtor needs firstname and lastname, or name",
     "debtor_name_missing", None),
    ("invoice.debtors[0].organizationNumber: a COMPANY debtor needs an organisation number "
     "(organisasjonsnummer)", "debtor_identity_mismatch", None),
    ("invoice.debtors[0].organizationNumber: a PRIVATE debtor carries no organisation number",
     "debtor_identity_mismatch", None),
    ("invoice.debtors[0].addresses: at least one address with street, zipCode and city is "
     "required", "debtor_address_missing", None),
    ("invoice: invoices.description is 2400 characters long; at most 2000 are sent",
     "text_too_long", "2400"),
    ("invoice.dueDate: Field required", "field_missing", "dueDate"),
    ("invoice.type: Input should be 'INVOICE' or 'COLLECTION_NOTICE' ('X')", "field_invalid",
     "X"),
    ("invoice.debtors: Input should be a valid list", "field_invalid", None),
    ("invoice.foo: Extra inputs are not permitted", "field_invalid", None),
    ("invoice.claims: List should have at least 1 item after validation, not 0",
     "field_invalid", None),
    ("creditor.countrycode: String should have at most 2 characters ('NOR')", "field_invalid",
     "NOR"),
    ("action: invoice INV-9 was not handed over to Amili by 2026-11-24: there is no case to act "
     "on", "case_not_handed_over", "INV-9"),
    ("payment: payments.invoice_id INV-404 is an invoice the warehouse does not have",
     "invoice_not_in_warehouse", "INV-404"),
    ("payment[2].invoiceId: unknown invoice 'nope': it must be the ledgerref of an invoice "
     "accepted earlier for senderid 's'", "invoice_unknown_to_amili", "nope"),
    ("invoice: its creditor 'CR02' is quarantined, so it cannot be sent as that creditor's (x)",
     "creditor_quarantined", "CR02"),
    ("invoice: its JSON is 70000 bytes and does not fit in a batch body", "object_too_large",
     "70000"),
    ("invoice[3]: rejected by sandbox fault injection (share=0.08)", "sandbox_fault_injection",
     None),
    ("batchid: at most 64 characters", reasons.OTHER, None),
]


def test_every_pattern_gives_its_code_and_value_alike_in_python_and_sql() -> None:
    assert {code for _, code, _ in CORPUS} >= set(reasons.MESSAGES)
    with duckdb.connect() as con:
        for text, code, value in CORPUS:
            assert reasons.classify(text) == (code, value), text
            assert con.execute(
                f"SELECT code, {reasons.value_sql('t', 'code')} "
                f"FROM (SELECT t, {reasons.code_sql('t')} AS code FROM (SELECT $t AS t))",
                {"t": text}).fetchone() == (code, value), text
        assert con.execute(f"SELECT {reasons.code_sql('NULL::VARCHAR')}").fetchone() == (None,)
    # the dbt project's messages are the catalogue's
    assert reasons.DBT_MACROS_FILE.read_text() == reasons.dbt_macros()
    assert reasons.DOCS_FILE.read_text() == reasons.docs_page()


@pytest.fixture
def inputs(tmp_path: Path) -> Inputs:
    return Inputs(tmp_path / "pipeline.duckdb")


def _negative(source_id: str, amount: str) -> str:
    data = json.loads(invoice_payload(source_id))
    data["originalInvoiceAmount"] = Decimal(amount)
    for claim in data["claims"]:
        claim["remainingAmount"] = Decimal(amount)
    return dumps(data)


def test_one_defect_with_different_values_is_one_code_with_the_values_apart(
    inputs: Inputs, make_client: ClientFactory
) -> None:
    negatives = {"INV-N1": "-1671.00", "INV-N2": "-412.91", "INV-N3": "-12345.23"}
    currencies = {"INV-C1": "KR", "INV-C2": "NKR"}
    inputs.creditor()
    inputs.invoices([
        *((sid, _negative(sid, amount)) for sid, amount in negatives.items()),
        *((sid, invoice_payload(sid, currency=c)) for sid, c in currencies.items()),
        ("INV-OK", invoice_payload("INV-OK")),
    ])

    day = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10,
                        max_bytes=1_000_000).days[0]

    assert day.objects["invoice"].quarantined == 5 and day.objects["invoice"].sent == 1
    rows = {sid: (code, value, reason) for sid, code, value, reason in inputs.sql(
        "SELECT source_id, reason_code, reason_value, reason FROM amili.quarantine")}
    assert {sid: rows[sid][:2] for sid in negatives} == {
        sid: ("amount_negative", amount) for sid, amount in negatives.items()}
    assert {sid: rows[sid][:2] for sid in currencies} == {
        sid: ("currency_unknown", c) for sid, c in currencies.items()}
    # the full text keeps every problem of the row, the sum of its claims included
    assert all(f"({amount})" in rows[sid][2] and "remainingAmount" in rows[sid][2]
               for sid, amount in negatives.items())
    assert inputs.sql("SELECT reason_code, count(*), list(reason_value ORDER BY reason_value) "
                      "FROM amili.quarantine GROUP BY ALL ORDER BY ALL") == [
        ("amount_negative", 3, sorted(negatives.values())),
        ("currency_unknown", 2, sorted(currencies.values()))]
    # and the text with its values masked no longer splits them (it gave '(-<n>.23)')
    masked = inputs.sql(f"""SELECT DISTINCT {NORMALIZE_REASON.format(message='reason')}
                            FROM amili.quarantine WHERE reason_code = 'amount_negative'""")
    assert len(masked) == 1 and "<n>." not in masked[0][0], masked


def test_a_rejection_by_amili_gets_the_code_and_value_of_its_message(
    inputs: Inputs, make_client: ClientFactory, clean_sandbox: SandboxServer
) -> None:
    inputs.creditor()
    inputs.invoices([("INV-1", invoice_payload("INV-1"))])
    inputs.payment("PAY-1", "INV-1", amili_id="no-such-case")  # Amili knows no such invoice

    day = submit_window(inputs.path, make_client(), DAY, NEXT, max_objects=10,
                        max_bytes=1_000_000).days[0]

    assert day.objects["payment"].rejected == 1
    [(message, code, value)] = inputs.sql(
        "SELECT error_message, error_code, error_value FROM amili.ledger_objects "
        "WHERE outcome = 'rejected'")
    assert "unknown invoice 'no-such-case'" in message
    assert (code, value) == ("invoice_unknown_to_amili", "no-such-case")
    tally = publish_results(inputs.path, DAY, NEXT)
    assert tally.top_reasons == [  # (the submission asset's metadata shows these)
        (f"invoice_unknown_to_amili: {reasons.MESSAGES['invoice_unknown_to_amili']}", 1)]
    assert inputs.sql("SELECT level, source_id, error_code FROM amili.errors") == [
        ("object", "PAY-1", "invoice_unknown_to_amili")]

    # the same defect quarantined here and rejected by Amili has the same code and value
    # (posted as raw JSON over HTTP: our client refuses to build such a body)
    body = '{"batchid": "direct", "invoice": [' + _negative("INV-2", "-10.00") + "]}"
    answer = httpx.post(f"{clean_sandbox.base_url}/webapi/api/Batch", content=body,
                        params={"senderid": "reasons-test"}, headers={
                            "Authorization": f"Bearer {clean_sandbox.issue_token()}",
                            "Content-Type": "application/json"}).json()
    first = answer["errors"][0]["message"]
    assert first.startswith("invoice[0].originalInvoiceAmount"), answer
    assert reasons.classify(first) == ("amount_negative", "-10.00")


@pytest.fixture
def defective_env(
    tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """One day of a demo warehouse where half the invoices carry a defect."""
    warehouse = tmp_path / "warehouse.duckdb"
    generate_demo_warehouse(warehouse, days=1, invoices_per_day=60, bad_share=0.5,
                            end_date=DAY, seed=5)
    env = {"AMILI_WAREHOUSE": str(warehouse), "AMILI_PIPELINE_DB": str(tmp_path / "p.duckdb"),
           "AMILI_BASE_URL": clean_sandbox.base_url,
           "AMILI_TOKEN": clean_sandbox.issue_token(ttl_seconds=3600),
           "AMILI_SENDER_ID": "reasons-test", "AMILI_BACKOFF_INITIAL_SECONDS": "0.01"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return tmp_path / "p.duckdb"


def test_the_mart_groups_by_code_and_an_unknown_currency_keeps_its_amount(
    defective_env: Path, sandbox_admin: SandboxAdmin
) -> None:
    result = run_job(partition_key=DAY.isoformat())
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    with duckdb.connect(str(defective_env), read_only=True) as con:
        fates = con.execute(
            """SELECT reason_code, currency, count(*), sum(amount),
                      coalesce(list(DISTINCT reason_value ORDER BY reason_value)
                               FILTER (WHERE reason_value IS NOT NULL), [])[1:5]
               FROM marts.rpt_object_fates
               WHERE partition_date = $d AND fate = 'quarantined' AND objectname = 'invoice'
               GROUP BY ALL ORDER BY ALL""", {"d": DAY}).fetchall()
        mart = con.execute(
            """SELECT reason_code, currency, object_count, amount, example_values
               FROM marts.rpt_rejection_reasons
               WHERE partition_date = $d AND kind = 'quarantined' AND objectname = 'invoice'
               ORDER BY ALL""", {"d": DAY}).fetchall()
        # the warehouse rows behind a quarantined object carry its code
        mismatched, rows = con.execute(
            """SELECT count(*) FILTER (WHERE s.reason_code IS DISTINCT FROM f.reason_code),
                      count(*)
               FROM marts.rpt_source_rows AS s JOIN marts.rpt_object_fates AS f
                 ON f.partition_date = s.partition_date AND f.objectname = s.objectname
                AND f.source_id = s.object_id
               WHERE s.bucket = 'quarantined'""").fetchone()
        messages = dict(con.execute(
            """SELECT DISTINCT reason_code, reason FROM marts.rpt_rejection_reasons
               WHERE partition_date = $d""", {"d": DAY}).fetchall())
    # the mart is the fates grouped by code and currency, the values apart
    assert mart == [(c, cur, n, total or Decimal(0), values)
                    for c, cur, n, total, values in fates]
    assert reasons.OTHER not in {row[0] for row in mart}  # every defect of the demo has a code
    negative = [row for row in mart if row[0] == "amount_negative"]
    assert negative and sum(row[2] for row in negative) >= 2, mart
    assert all(len(row[4]) == min(row[2], 5) and all(v.startswith("-") for v in row[4])
               for row in negative)
    # an unknown currency keeps its amount, under the currency as written
    unknown = [row for row in mart if row[0] == "currency_unknown"]
    assert unknown and all(row[1] not in {"NOK", "EUR", "SEK"} and row[1] in row[4]
                           and row[3] > 0 for row in unknown), unknown
    assert rows > 0 and mismatched == 0
    assert messages["amount_negative"] == reasons.MESSAGES["amount_negative"]
    assert messages["currency_unknown"] == reasons.MESSAGES["currency_unknown"]


def test_a_quarantine_written_before_reason_codes_gets_them_from_its_texts(
    inputs: Inputs,
) -> None:
    from amili.pipeline import ledger

    with duckdb.connect(str(inputs.path)) as con:
        con.execute("CREATE SCHEMA amili")
        con.execute("""CREATE TABLE amili.quarantine (partition_date DATE NOT NULL,
            objectname VARCHAR NOT NULL, source_id VARCHAR, reason VARCHAR NOT NULL,
            payload VARCHAR, quarantined_at TIMESTAMPTZ NOT NULL)""")
        con.execute("""INSERT INTO amili.quarantine VALUES
            (DATE '2026-11-24', 'invoice', 'I1',
             'invoice.currency: ''NKR'' is not a known ISO 4217 currency code', '{}', now()),
            (DATE '2026-11-24', 'invoice', 'I2', 'something new', '{}', now())""")
        ledger.ensure_schema(con)
        ledger.ensure_schema(con)  # idempotent
        assert con.execute("SELECT source_id, reason_code, reason_value FROM amili.quarantine "
                           "ORDER BY source_id").fetchall() == [
            ("I1", "currency_unknown", "NKR"), ("I2", "other", None)]
        # and new rows go in after them, their codes derived as they are written
        ledger.insert_quarantine(con, DAY, [("invoice", "I3", "invoice.dueDate: Field required",
                                             "{}")])
        assert con.execute("SELECT reason_code, reason_value FROM amili.quarantine "
                           "WHERE source_id = 'I3'").fetchone() == ("field_missing", "dueDate")
