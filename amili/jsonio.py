"""JSON in and out with exact money: Decimal is written as a JSON number, digit for digit.

pydantic writes ``Decimal`` as a JSON *string*, and going through ``float`` would round large
amounts; orjson's ``Fragment`` lets a Decimal's own text stand in the output unchanged. In,
jiter (pydantic's own JSON parser) reads every number with a fraction or exponent straight
into a ``Decimal``, in about half the time of the standard library's ``parse_float=Decimal``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import jiter
import orjson
from pydantic import BaseModel


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"amount {value} is not a finite number")
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_jsonable(model: BaseModel) -> Any:
    """The model as plain Python, with API field names, leaving out unset (``None``) fields.

    Date-times are already strings here; Decimals stay Decimal for :func:`dumps`.
    """
    return _restore_decimals(
        model.model_dump(mode="json", by_alias=True, exclude_none=True),
        model.model_dump(mode="python", by_alias=True, exclude_none=True),
    )


def _restore_decimals(json_form: Any, python_form: Any) -> Any:
    """Take the JSON-mode dump but put the Decimals of the Python-mode dump back in."""
    if isinstance(python_form, Decimal):
        return python_form
    if isinstance(json_form, dict):
        return {k: _restore_decimals(v, python_form[k]) for k, v in json_form.items()}
    if isinstance(json_form, list):
        return [_restore_decimals(a, b) for a, b in zip(json_form, python_form, strict=True)]
    return json_form


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; a pydantic model is dumped with :func:`to_jsonable` first."""
    if isinstance(value, BaseModel):
        value = to_jsonable(value)
    return orjson.dumps(value, default=_default)


def loads(data: bytes | str) -> Any:
    """Parse JSON keeping every number with a fraction as an exact ``Decimal``; malformed
    text (or text that is not UTF-8) raises ``ValueError`` naming the line and column."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return jiter.from_json(data, float_mode="decimal", cache_mode="keys")
