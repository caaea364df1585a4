"""Typed, validated JSON files: the base of `preprocess.json` and the bundle manifest.

A file may come from someone else. It is parsed with guards (no NaN or Infinity, no number that
overflows a float or has thousands of digits, no nesting deep enough to exhaust the stack) and
validated by pydantic against a strict schema (no extra keys, no `true` where a number belongs, no
lone surrogate in a string, bounds on every number and length), and any problem becomes one
VoxpopError naming the file and the field:
`bundle/ensemble.json: members[1].weight: Input should be a valid number`.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from voxpop.data.errors import VoxpopError, first_line

# A name, label, token or id in a voxpop file; longer ones are refused.
MAX_NAME_CHARS = 1000
# Field paths in error messages show at most this many steps.
MAX_PATH_PARTS = 8


def _unicode(text: str) -> str:
    # JSON's \ud800 escapes make Python strings that cannot be written out as UTF-8 later.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("String holds a lone surrogate (not valid Unicode)") from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS), AfterValidator(_unicode)
]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]

RecordType = TypeVar("RecordType", bound="Record")


class Record(BaseModel):
    """A JSON object of a voxpop file: strict types, no unknown keys, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    @classmethod
    def parse(cls: type[RecordType], data: bytes | str, *, source: str) -> RecordType:
        """The record in the JSON text `data` (read from `source`, named in errors)."""
        return cls.from_value(load_json(data, source=source), source=source)

    @classmethod
    def from_value(cls: type[RecordType], value, *, source: str) -> RecordType:
        """The record for an already parsed JSON value; VoxpopError naming the first bad field."""
        if not isinstance(value, dict):
            raise VoxpopError(f"{source}: expected a JSON object at the top level")
        try:
            return cls.model_validate(value)
        except ValidationError as err:
            raise invalid(source, err) from None

    def to_json(self) -> str:
        """Indented JSON text of the record (what its owner writes)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def load_json(data: bytes | str, *, source: str):
    """Parse JSON text that may be hostile: VoxpopError (naming `source`) for invalid UTF-8 or
    JSON, NaN/Infinity, numbers that overflow a float or have thousands of digits, and nesting
    deep enough to exhaust the stack."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except UnicodeDecodeError as err:
        raise VoxpopError(f"{source}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise VoxpopError(f"{source}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except (ValueError, RecursionError) as err:  # NaN, inf, an int of > 4300 digits, deep nesting
        raise VoxpopError(f"{source}: not valid JSON ({first_line(err)})") from None
    return value


def invalid(source: str, err: ValidationError) -> VoxpopError:
    """One line for a pydantic ValidationError: the first bad field, its problem, and how many
    more there are."""
    errors = err.errors(include_url=False, include_input=False)
    first = errors[0]
    where = field_path(first["loc"])
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    message = first["msg"].removeprefix("Value error, ")
    return VoxpopError(f"{source}: {where + ': ' if where else ''}{message}{more}")


def field_path(loc) -> str:
    """`("members", 1, "weight")` -> `members[1].weight`; keys from the file are quoted and cut
    short, with non-printable characters escaped, so that a hostile key cannot flood the line."""
    path = ""
    if len(loc) > MAX_PATH_PARTS:
        loc = (*loc[:MAX_PATH_PARTS], "...")
    for part in loc:
        if part == "[key]":  # pydantic's mark of an error in a dict key: the key is shown already
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "...":
            path += part
        elif part.isidentifier() and len(part) <= 40:
            path += f".{part}" if path else part
        else:
            path += f"[{quoted(part)}]"
    return path


def quoted(text: str) -> str:
    """`text` in quotes for a message: cut to 60 characters, non-ASCII and control characters
    escaped (a hostile file's strings must not flood or drive the terminal)."""
    text = text if len(text) <= 60 else text[:57] + "..."
    return repr(text).encode("ascii", "backslashreplace").decode("ascii")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is too large for a float")
    return value
