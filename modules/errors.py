"""The one way a pydantic ValidationError becomes user-facing text: one "field: sentence" per problem.

Used for job parameters (API, CLI, UI, import, metadata, grid cells), settings and post-processing options.
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import ValidationError

_PREFIXES = ("Value error, ", "Assertion failed, ")  # pydantic's wrapping of a validator's own message


class FieldMessage(NamedTuple):
    field: str  # dotted location, as the API reports it: "steps", "keyframes.0.image"
    message: str


def field_messages(exc: ValidationError, default_field: str = "params") -> list[FieldMessage]:
    """Every problem as (field, message). A model-level check has no location of its own, so it names the field
    at the start of its message ("input_video: required for ..."); that name is used as the field."""
    out = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err.get("loc", ()))
        message = str(err.get("msg", "invalid"))
        for prefix in _PREFIXES:
            message = message.removeprefix(prefix)
        if not field and ":" in message:
            head, _, tail = message.partition(":")
            if head and " " not in head.strip():  # "field: sentence", not a sentence that holds a colon
                field, message = head.strip(), tail.strip()
        out.append(FieldMessage(field or default_field, message))
    return out


def format_errors(exc: ValidationError, default_field: str = "params", limit: int | None = None) -> list[str]:
    """"field: message" lines; with `limit`, at most that many plus a line saying how many more there are."""
    lines = [f"{m.field}: {m.message}" for m in field_messages(exc, default_field)]
    if limit is not None and len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines
