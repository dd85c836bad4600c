"""Every rule of the shared validation gives a problem that has a reason code (not `other`),
so a quarantined row and a rejection are grouped by what is wrong (amili/reasons.py)."""

from __future__ import annotations

from sandbox_payloads import creditor, invoice
from test_sandbox_post_batch import RULES

from amili import reasons
from amili.models import ObjectName
from amili.validation import validate_object


def test_every_rule_the_sandbox_tests_break_gives_problems_with_a_code() -> None:
    for array, change, expected in RULES:
        obj = invoice(1) if array == "invoice" else creditor()
        change(obj)
        problems = validate_object(ObjectName(array), 1, obj).problems
        assert any(expected in p for p in problems), (expected, problems)
        for problem in problems:
            assert reasons.classify(problem)[0] != reasons.OTHER, problem
