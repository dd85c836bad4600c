"""What failed in a Dagster run, in words: the step (or the resources' setup) and its error.

Read from the run's own failure events, so a command line (``amili demo``) can say what went
wrong without a traceback, and tests can assert on the same text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: The events that say what failed, in the order a run emits them.
_FAILURE_EVENTS = ("RESOURCE_INIT_FAILURE", "STEP_FAILURE", "PIPELINE_FAILURE", "RUN_FAILURE")


@dataclass(frozen=True)
class RunFailure:
    """One failure: ``where`` (a step key, or ``"resource setup"``) and the error's message."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def root_error(error: Any) -> Any:
    """The innermost cause under Dagster's own wrappers: the error the project's code raised."""
    while getattr(error, "cause", None) is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    return error


def error_text(error: Any) -> str:
    """``Class: message`` of a serialized error, without its module path or stack."""
    message = (error.message or "").strip()
    head, sep, rest = message.partition(": ")
    if sep and head.rsplit(".", 1)[-1] == error.cls_name:
        message = rest
    return f"{error.cls_name}: {message}" if error.cls_name else message


def run_failures(events: Iterable[Any]) -> list[RunFailure]:
    """The failures of a run from its events (``result.all_events`` of an in-process run, or
    the event log's records' ``dagster_event``): each failed step, or the resources' setup;
    the run's own failure only when nothing more precise was reported."""
    found: list[RunFailure] = []
    run_level: list[RunFailure] = []
    for event in events:
        kind = getattr(event, "event_type_value", None)
        if kind not in _FAILURE_EVENTS:
            continue
        error = getattr(event.event_specific_data, "error", None)
        message = error_text(root_error(error)) if error is not None else (event.message or "")
        if kind == "RESOURCE_INIT_FAILURE":
            found.append(RunFailure("resource setup", message))
        elif kind == "STEP_FAILURE":
            found.append(RunFailure(event.step_key or "a step", message))
        else:
            run_level.append(RunFailure("run", message))
    return found or run_level
