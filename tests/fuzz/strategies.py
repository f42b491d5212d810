"""Hypothesis strategies for queue messages: junk, arbitrary JSON, and near-valid messages per queue.

Near-valid messages start from the shape a handler expects and swap keys or values for odd ones, so the
generator reaches the validation of every field instead of stopping at "not JSON".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import strategies as st

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=24)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Text that looks like what fields hold: ids, names, dates, URLs, with the usual troublemakers mixed in.
ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\n",
        "\x00",
        "é",
        "../../etc/passwd",
        "9" * 400,
        "-1",
        "1e999",
        "nan",
        "NaN",
        "null",
        "2024-13-45T99:99:99Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59+14:00",
        "http://[::1",
        "https://127.0.0.1:99999/x",
        "https://user:pw@127.0.0.1/x",
        "x" * 2000,
        "\u202eoverride",  # right-to-left override
        "\ud7ff",
    ]
)
FIELD_VALUES = JSON_VALUES | ODD_TEXT


def deep_nesting() -> st.SearchStrategy[str]:
    """Arrays or objects nested far past the JSON parser's recursion limit (a queue message holds 64 KiB)."""
    return st.integers(min_value=900, max_value=30_000).flatmap(
        lambda n: st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n, "[" * n])
    )


def junk_bodies() -> st.SearchStrategy[bytes]:
    """Bytes that are not a message at all: binary, text, JSON scalars and lists, deep nesting."""
    return st.one_of(
        st.binary(max_size=64),
        st.text(max_size=64).map(lambda t: t.encode("utf-8")),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        deep_nesting().map(str.encode),
    )


def near_valid(
    base: Mapping[str, Any], alternatives: Mapping[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """`base` with some keys dropped, some values replaced (from `alternatives` or anything), extras added."""

    @st.composite
    def build(draw: Callable[..., Any]) -> dict[str, Any]:
        message: dict[str, Any] = {}
        for key, value in base.items():
            choice = draw(st.sampled_from(["keep", "keep", "keep", "drop", "swap", "odd"]))
            if choice == "keep":
                message[key] = value
            elif choice == "swap":
                message[key] = draw(alternatives.get(key, FIELD_VALUES))
            elif choice == "odd":
                message[key] = draw(FIELD_VALUES)
        if draw(st.integers(0, 9)) == 0:
            message[draw(st.text(min_size=1, max_size=8))] = draw(FIELD_VALUES)
        return message

    return build()


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()
