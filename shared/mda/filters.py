"""A small immutable builder for the MDA `filters` grammar (https://learn.microsoft.com/defender-cloud-apps/api-introduction).

`{"filters": {"<field>": {"<op>": <value>}}}`; fields AND together. The builder knows which operators take a
list and which a single value, turns datetimes into epoch milliseconds, and refuses unknown operators early -
so a typo fails in our code with a clear message instead of as a 400 from the service.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

LIST_OPERATORS = frozenset(
    {
        "eq",
        "neq",
        "deq",
        "contains",
        "ncontains",
        "startswith",
        "endswith",
        "doesnotstartwith",
        "descendantof",
        "ndescendantof",
        "range",
    }
)
SINGLE_OPERATORS = frozenset(
    {"gt", "gte", "lt", "lte", "gte_ndays", "lte_ndays", "isset", "isnotset", "startswithsingle", "text"}
)
OPERATORS = LIST_OPERATORS | SINGLE_OPERATORS


def to_epoch_ms(value: dt.datetime | int | float) -> int:
    """Timestamps in filters are Unix epoch milliseconds (13 digits); naive datetimes are taken as UTC."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, bool):
        raise TypeError("a timestamp must be a datetime or epoch milliseconds, not a bool")
    return int(value)


class Filter:
    """Immutable: every method returns a new Filter. `to_json()` gives the `filters` object."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._fields: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (fields or {}).items()}
        for name, ops in self._fields.items():
            for op in ops:
                _check_operator(name, op)

    def where(self, field: str, op: str, value: Any) -> Filter:
        """Add (or replace) one `field.op` condition."""
        _check_operator(field, op)
        if op in LIST_OPERATORS and op != "range":
            value = _as_list(value)
        fields = {k: dict(v) for k, v in self._fields.items()}
        fields.setdefault(field, {})[op] = value
        return Filter(fields)

    def without(self, field: str, op: str | None = None) -> Filter:
        fields = {k: dict(v) for k, v in self._fields.items()}
        if op is None:
            fields.pop(field, None)
        elif field in fields:
            fields[field].pop(op, None)
            if not fields[field]:
                del fields[field]
        return Filter(fields)

    def merged(self, other: Filter | Mapping[str, Mapping[str, Any]] | None) -> Filter:
        """Conditions of `other` added on top of (and overriding) ours."""
        if other is None:
            return self
        result = self
        items = other.to_json() if isinstance(other, Filter) else other
        for field, ops in items.items():
            for op, value in ops.items():
                result = result.where(field, op, value)
        return result

    # Conveniences used by the alert code; anything else goes through `where`.
    def eq(self, field: str, *values: Any) -> Filter:
        return self.where(field, "eq", list(values))

    def neq(self, field: str, *values: Any) -> Filter:
        return self.where(field, "neq", list(values))

    def gte(self, field: str, value: dt.datetime | int) -> Filter:
        return self.where(field, "gte", to_epoch_ms(value))

    def lte(self, field: str, value: dt.datetime | int) -> Filter:
        return self.where(field, "lte", to_epoch_ms(value))

    def ids(self, ids: Iterable[str]) -> Filter:
        return self.where("id", "eq", list(ids))

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._fields.items()}

    def get(self, field: str, op: str) -> Any:
        return self._fields.get(field, {}).get(op)

    def __bool__(self) -> bool:
        return bool(self._fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Filter) and other._fields == self._fields

    def __hash__(self) -> int:
        return hash(repr(sorted(self._fields.items())))

    def __repr__(self) -> str:
        return f"Filter({self._fields!r})"


def _check_operator(field: str, op: str) -> None:
    if not field or not isinstance(field, str):
        raise ValueError("a filter field must be a non-empty string")
    if op not in OPERATORS:
        raise ValueError(
            f"unknown filter operator {op!r} for {field!r} (known: {', '.join(sorted(OPERATORS))})"
        )


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return [value]


def filter_from_json(raw: Any, *, what: str = "filters") -> Filter:
    """Validate a caller-supplied filters object (queue job, CLI); ValueError says what is wrong."""
    if raw is None:
        return Filter()
    if not isinstance(raw, Mapping):
        raise ValueError(f"{what} must be an object of {{field: {{operator: value}}}}")
    for field, ops in raw.items():
        if not isinstance(ops, Mapping) or not ops:
            raise ValueError(f"{what}.{field} must be a non-empty object of operators")
    return Filter(raw)
