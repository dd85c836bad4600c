"""Validation of a posted batch body: the batch-level checks, plus the per-object rules.

The per-object rules (pydantic shape plus Norwegian domain rules) live in
:mod:`amili.validation`, shared with the submission pipeline so that it can quarantine a row
with exactly the message the sandbox would answer; they are re-exported here so the sandbox
reads as before. What stays here is only about a batch as a whole (its ``batchid``, its
arrays), which refuses the entire body rather than one object.
"""

from __future__ import annotations

from typing import Any

from amili.contract import DEFAULT_CONTRACT, ApiContract
from amili.models import ObjectName
from amili.validation import (
    ObjectCheck,
    Problems,
    format_loc,
    is_valid_kid,
    kid_mod10_check_digit,
    kid_mod11_check_digit,
    kid_problem,
    payload_problems,
    validate_array,
    validate_object,
)

__all__ = [
    "ObjectCheck",
    "Problems",
    "batch_problems",
    "format_loc",
    "is_valid_kid",
    "kid_mod10_check_digit",
    "kid_mod11_check_digit",
    "kid_problem",
    "object_arrays",
    "payload_problems",
    "validate_array",
    "validate_object",
]


def batch_problems(
    body: Any, assumptions: ApiContract = DEFAULT_CONTRACT
) -> list[str]:
    """Problems with the batch as a whole (not with one object), which refuse it entirely."""
    if not isinstance(body, dict):
        return [f"the body must be a JSON object, not {type(body).__name__}"]
    problems = []
    batchid = body.get("batchid")
    if batchid is None:
        problems.append("batchid: Field required")
    elif not isinstance(batchid, str) or not batchid.strip():
        problems.append("batchid: must be a non-empty string")
    elif len(batchid) > assumptions.max_batchid_length:
        problems.append(f"batchid: at most {assumptions.max_batchid_length} characters")
    offline = body.get("offline")
    if offline is not None and not isinstance(offline, bool):
        problems.append("offline: must be true or false")
    for name in ObjectName:
        value = body.get(name.value)
        if value is not None and not isinstance(value, list):
            problems.append(f"{name.value}: must be an array")
    return problems


def object_arrays(body: dict[str, Any]) -> dict[ObjectName, list[Any]]:
    """The four arrays of a (shape-checked) body; a missing or null array is empty."""
    return {name: list(body.get(name.value) or []) for name in ObjectName}
