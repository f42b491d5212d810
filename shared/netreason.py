"""The operating system's (or OpenSSL's) words inside a transport error, for messages that say why a host
could not be reached: "Connection refused", "Name or service not known", "self-signed certificate ...".
"""

from __future__ import annotations

import re

_REASON = re.compile(
    r"certificate verify failed: ([^(')\]]+)"
    r"|\[Errno -?\d+\] ([^'\")\]]+)"
    r"|(Name or service not known|Temporary failure in name resolution)"
)


def os_reason(exc: BaseException) -> str:
    """The first recognisable reason in `exc`'s text (or its causes'), else ""."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        match = _REASON.search(str(current))
        if match:
            return " ".join(next(g for g in match.groups() if g).split())
        current = current.__cause__ or current.__context__
    return ""


def is_tls_failure_text(exc: BaseException) -> bool:
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text or "SSLError" in text
