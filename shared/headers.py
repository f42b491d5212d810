"""HTTP header names are case-insensitive (RFC 9110, section 5.1); plain mappings are not."""

from __future__ import annotations

from collections.abc import Mapping


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header `name` in `headers`, whatever the case of either; None when absent."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None
