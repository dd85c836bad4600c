"""The ledger's DDL has one source: amili/pipeline/ledger.py; dbt's copy is generated from it."""

from __future__ import annotations

from amili.pipeline import ledger


def test_the_dbt_macros_are_generated_from_the_ledgers_ddl() -> None:
    """dbt_project/macros/amili_ledger.sql is exactly what ``python -m amili.pipeline.ledger``
    writes (tests/pipeline/test_reconciliation.py then holds the tables dbt creates with it
    to those the submission creates)."""
    assert ledger.DBT_MACROS_FILE.read_text() == ledger.dbt_macros(), (
        "dbt_project/macros/amili_ledger.sql is out of date with amili/pipeline/ledger.py: "
        "run `python -m amili.pipeline.ledger`"
    )


def test_every_table_of_the_ddl_has_its_macro_and_a_hook() -> None:
    hooks = (ledger.DBT_MACROS_FILE.parents[1] / "dbt_project.yml").read_text()
    for name in ("submission_ledger", "ledger_arrays", "ledger_object_answers", "quarantine",
                 "acknowledged_creditors", "acknowledged_invoices", "changes_after_handover"):
        assert f"{{% macro create_{name}() %}}" in ledger.dbt_macros(), name
        assert f"{{{{ create_{name}() }}}}" in hooks, name
    assert "CREATE VIEW IF NOT EXISTS amili.ledger_objects" in ledger.dbt_macros()
