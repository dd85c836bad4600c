"""Reason codes: one stable code per kind of problem, a message a finance analyst would say,
and the offending value apart, for every quarantined row and every rejection.

Why a catalogue of patterns rather than codes threaded through every check: a reason is made
in many places (Python validation, the row checks of the day, dbt's row defects, the batch
models) and Amili's rejections are Amili's words, out of our control. So every reason keeps
its full text (what exactly was wrong with that row) and its **code** is derived from that
text by one documented normalisation, the same for a row we quarantined and for a row Amili
rejected: the patterns of :data:`CATALOGUE` are tried in order and the first that matches
anywhere in the text gives the code, and its first group (if it has one) the **value**. The
order is one of importance (the row's identity first, then its money, then its fields, then
what follows from another row), so a row with several problems is grouped under its most
fundamental one; the full text still lists them all. A text no pattern knows is ``other``,
and is grouped by its text with the values masked (``normalize_reason`` in dbt).

The patterns are written for both Python's :mod:`re` and DuckDB's RE2: the submission
classifies its quarantined rows in Python as it writes them (:func:`classify`, a few µs a
row), the results and older ledgers in SQL (:func:`code_sql`, :func:`value_sql`); a test
holds the two equal.
dbt reads the messages from ``macros/amili_reasons.sql``, written by
``python -m amili.reasons`` (a test holds the file to this module).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: The code of a text no pattern knows.
OTHER = "other"

_Q = r"'((?:[^'\\]|\\.)*)'"
"""A quoted value as Python's ``repr`` writes it; group 1 is the text inside."""


@dataclass(frozen=True)
class Reason:
    """One kind of problem: its code, what it means in words, and the texts that say it."""

    code: str
    message: str
    patterns: tuple[str, ...]


CATALOGUE: tuple[Reason, ...] = (
    # -- the row's identity
    Reason("reference_missing",
           "The payment or case action names no invoice, so there is no case to book it on",
           (r"row has no invoice_id: it (?:pays|names) no case",)),
    Reason("id_missing", "The row has no id, so it cannot be sent or traced back",
           (r"row has no (\w+_id)\b",)),
    Reason("id_repeated",
           "The same id is on more than one row of the day; none of them is sent until "
           "the warehouse keeps one", (r"_id '?([^' ;]+?)'? appears \d+ times on",)),
    Reason("line_repeated", "An invoice line number is repeated within the invoice",
           (r"invoice_lines line (\S+) appears \d+ times",)),
    Reason("unique_id_differs",
           "The id inside the invoice or payment differs from the row's id, so Amili's "
           "answer could not be matched to the row",
           (rf"\.uniqueSource\w+Id: {_Q} differs from the row's",)),
    Reason("payload_missing", "The row has no content to send", (r"the row has no payload",)),
    Reason("payload_invalid", "The row's content is not readable (not a JSON object)",
           (r"the payload is not valid JSON", r"the payload is not a JSON object")),
    # -- its money
    Reason("amount_not_a_number", "An amount is not a number",
           (r"must be a JSON number, not a string \(" + _Q + r"\)",
            r"[a-z_]+\.[a-z_]+ (\S+) is not a number")),
    Reason("amount_too_large", "An amount is larger than Amili can carry",
           (r"(\S+) is beyond the largest amount",)),
    Reason("amount_too_precise",
           "An amount has more than two decimals (Amili carries whole øre; we never round)",
           (r"(\S+) has more than two decimals",
            r"Decimal input should have no more than \d+ decimal places?(?: \(([^()]*)\))?")),
    Reason("amount_negative",
           "The amount is negative: a credit note or a reversal is not a debt to collect",
           (r"amount must not be negative(?: \(([^()]*)\))?",)),
    Reason("claims_not_positive",
           "Nothing is owed: the invoice's open claims add up to zero or less",
           (r"the sum of remainingAmount \(([^()]*)\) must be greater than 0",)),
    Reason("principal_exceeds_invoice",
           "The principal still owed is more than the invoice's original amount",
           (r"PRINCIPAL claims' remainingAmount \(([^()]*)\) exceeds",)),
    Reason("amount_zero", "The payment's amount is zero", (r"\.amount: must be greater than 0",)),
    Reason("paid_amount_invalid",
           "The payments registered since the collection day cannot be carried as an amount",
           (r"registered since the collection day sum to (.+?), which the API cannot carry",)),
    Reason("payment_exceeds_open_amount", "The payment is more than is still open on the invoice",
           (r"\.amount: (\S+) exceeds the open amount",)),
    Reason("currency_unknown",
           "The currency is not a known currency code (the amount is kept in it, as written)",
           (rf"currency: {_Q} is not a known ISO 4217 currency code",)),
    # -- its fields
    Reason("kid_invalid", "The KID (payment reference) is not valid",
           (rf"{_Q} is not a valid KID",)),
    Reason("organisation_number_invalid", "The organisation number is not valid",
           (rf"{_Q} is not a valid Norwegian organisation number",)),
    Reason("national_id_invalid", "The national identity number (fødselsnummer) is not valid",
           (rf"{_Q} is not a valid Norwegian national identity number",)),
    Reason("bank_account_invalid", "The bank account number is not valid",
           (rf"{_Q} is not a valid (?:Norwegian bank account number|IBAN|BIC/SWIFT code)",)),
    Reason("email_invalid", "The e-mail address is not valid",
           (rf"{_Q} is not a valid e-mail address",)),
    Reason("postcode_invalid", "The postcode is not a Norwegian postcode",
           (rf"{_Q} is not a Norwegian postcode",)),
    Reason("due_before_invoice_date", "The due date is before the invoice date",
           (r"dueDate: (\S+) is before invoiceDate",)),
    Reason("debtor_name_missing", "The debtor has no name",
           (r"a (?:PRIVATE|COMPANY) debtor needs (?:firstname and lastname, or )?name",)),
    Reason("debtor_identity_mismatch",
           "The debtor's identity number does not fit the kind of debtor (company or person)",
           (r"a COMPANY debtor (?:carries an|needs an) organisation number",
            r"a PRIVATE debtor carries no organisation number")),
    Reason("debtor_address_missing", "The debtor has no complete address",
           (r"at least one address with street, zipCode and city is required",)),
    Reason("text_too_long", "A text field is longer than we send",
           (r"is (\d+) characters long; at most",)),
    Reason("field_missing", "A required field is empty",
           (r"\.(\w+): Field required",)),
    Reason("field_invalid", "A field has a value of the wrong kind",
           (r"\.\w+: (?:Input|List|String) should [^;]*? \('?([^();']*)'?\)(?:;|$)",
            r"\.\w+: (?:Input|List|String) should ",
            r"\.\w+: Extra inputs are not permitted")),
    # -- what follows from another row, or from Amili
    Reason("case_not_handed_over",
           "The invoice this concerns has not been handed over to Amili, so there is no "
           "case yet", (r"invoice (\S+) was not handed over to Amili by",)),
    Reason("invoice_not_in_warehouse", "The invoice it refers to is not in the warehouse",
           (r"invoice_id (\S+) is an invoice the warehouse does not have",)),
    Reason("invoice_unknown_to_amili", "Amili does not know the invoice it refers to",
           (rf"unknown invoice {_Q}: it must be the ledgerref",)),
    Reason("creditor_quarantined",
           "Its creditor is quarantined, so it cannot be sent in the creditor's name",
           (rf"its creditor {_Q} is quarantined",)),
    Reason("object_too_large", "The object is too large for any batch Amili accepts",
           (r"its JSON is (\d+) bytes and does not fit",)),
    Reason("sandbox_fault_injection",
           "Rejected on purpose by sandbox fault injection (a test, not a real defect)",
           (r"rejected by sandbox fault injection",)),
)

#: code -> the message for it.
MESSAGES: dict[str, str] = {r.code: r.message for r in CATALOGUE}

def _hint(pattern: str) -> str:
    """The longest run of plain characters every match of ``pattern`` contains: a substring
    search for it (``in`` here, ``contains`` in DuckDB) comes before the regular expression,
    which makes classifying a day's reasons several times cheaper."""
    best = run = ""
    for op, arg in re._parser.parse(pattern):  # type: ignore[attr-defined]
        if op is re._constants.LITERAL:  # type: ignore[attr-defined]
            run += chr(arg)
        else:
            best, run = max(best, run, key=len), ""
    return max(best, run, key=len)


_COMPILED: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (r.code, _hint(p), re.compile(p)) for r in CATALOGUE for p in r.patterns)


def classify(text: str | None) -> tuple[str | None, str | None]:
    """``(code, value)`` of a reason's text; ``(None, None)`` for no text."""
    if text is None:
        return None, None
    for code, hint, pattern in _COMPILED:
        if hint in text and (match := pattern.search(text)) is not None:
            value = match.group(1) if pattern.groups else None
            return code, value or None
    return OTHER, None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _matches_sql(column: str, pattern: str) -> str:
    return (f"(contains({column}, {_literal(_hint(pattern))}) "
            f"AND regexp_matches({column}, {_literal(pattern)}))")


def code_sql(column: str) -> str:
    """A DuckDB expression: the code of the text in ``column`` (NULL for NULL)."""
    whens = "".join(f" WHEN {_matches_sql(column, p)} THEN {_literal(r.code)}"
                    for r in CATALOGUE for p in r.patterns)
    return f"(CASE WHEN {column} IS NULL THEN NULL{whens} ELSE {_literal(OTHER)} END)"


def value_sql(column: str, code: str) -> str:
    """A DuckDB expression: the value the pattern of the text's code picks out, or NULL;
    ``code`` is the text's code (the column :func:`code_sql` made), so only that code's
    pattern runs."""
    whens = []
    for reason in CATALOGUE:
        picks = [(p, f"nullif(regexp_extract({column}, {_literal(p)}, 1), '')"
                  if re.compile(p).groups else "NULL") for p in reason.patterns]
        if all(pick == "NULL" for _, pick in picks):
            continue
        if len(picks) == 1:
            value = picks[0][1]
        else:  # the first of the code's patterns that matches, as classify() takes it
            value = "CASE" + "".join(f" WHEN {_matches_sql(column, p)} THEN {pick}"
                                     for p, pick in picks) + " END"
        whens.append(f" WHEN {_literal(reason.code)} THEN {value}")
    return f"(CASE {code}{''.join(whens)} END)"


#: The dbt project's copy of the messages, written by :func:`dbt_macros`.
DBT_MACROS_FILE = Path(__file__).resolve().parents[1] / "dbt_project/macros/amili_reasons.sql"


def dbt_macros() -> str:
    """The text of :data:`DBT_MACROS_FILE`: ``reason_message(code)``, the message of a code
    (NULL for ``other`` and unknown codes)."""
    whens = "\n".join(f"        when {_literal(r.code)} then {_literal(r.message)}"
                      for r in CATALOGUE)
    return (
        "{#\n  GENERATED from amili/reasons.py (CATALOGUE) by `python -m amili.reasons`:\n"
        "  do not edit. The message of each reason code, as a finance analyst would say it.\n"
        "#}\n"
        "{% macro reason_message(code) -%}\n"
        f"    case {{{{ code }}}}\n{whens}\n    end\n"
        "{%- endmacro %}\n"
    )


#: The list of codes for readers, written by :func:`docs_page`.
DOCS_FILE = Path(__file__).resolve().parents[1] / "docs/reason-codes.md"


_PUNCTUATION = " '("


def docs_page() -> str:
    """The text of :data:`DOCS_FILE`: every code, its message, and the words that mark it."""
    rows = "\n".join(
        f"| `{r.code}` | {r.message} | "
        + "; ".join(f"“{_hint(p).strip(_PUNCTUATION)}”" for p in r.patterns) + " |"
        for r in CATALOGUE)
    return (
        "# Reason codes\n\n"
        "<!-- GENERATED from amili/reasons.py by `python -m amili.reasons`: do not edit. -->\n\n"
        "Every quarantined row and every object Amili rejected keeps the full text of what "
        "was wrong with it (`amili.quarantine.reason`, `amili.ledger_objects.error_message`) "
        "and, next to it, a stable **reason code** (the grouping key: `reason_code`, "
        "`error_code`), the **value** the text names (`reason_value`, `error_value`: the "
        "negative amount, the unknown currency as written, the invalid KID, the repeated "
        "id...) and, in the marts, the code's **message** below.\n\n"
        "The code is derived from the text by one normalisation, the same for a row we "
        "quarantined and one Amili rejected (whose words are Amili's): the patterns of "
        "`amili/reasons.py` are tried in the order of this table, and the first that "
        "matches anywhere in the text gives the code, so a row with several problems is "
        "grouped under the first of them here (the full text lists them all). A text no "
        "pattern knows is `other`, grouped by its text with the values masked.\n\n"
        "| Code | Message | Recognised by the words |\n|---|---|---|\n"
        f"{rows}\n| `{OTHER}` | (the text, its values masked) | anything else |\n"
    )


if __name__ == "__main__":  # pragma: no cover - a maintenance command
    DBT_MACROS_FILE.write_text(dbt_macros())
    DOCS_FILE.write_text(docs_page())
    print(f"wrote {DBT_MACROS_FILE} and {DOCS_FILE}")
