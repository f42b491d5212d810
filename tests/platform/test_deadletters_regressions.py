"""Regression tests for bugs the fuzz and chaos suites found in the dead-letter store. One test per bug, in
process.

Each names the failure it pins down; the fuzz- and chaos-marked tests keep exploring.
"""

from __future__ import annotations

# -- a reason quoting a control character made storage refuse the letter (its metadata is a header) ---


def test_a_reason_with_control_characters_is_still_stored(app_env: dict[str, str]) -> None:
    import uuid

    from shared.deadletters import _metadata_safe, dead_letter, get_letter

    reason = "invalid discovery job - stream: 'a\x01b'\r\n\x00\x7f é"
    letter = dead_letter(source="regression", reason=reason, body="{}", message_id=uuid.uuid4().hex)
    assert get_letter(letter.id).reason == reason  # the full reason, unchanged, is in the blob
    assert _metadata_safe(reason) == "invalid discovery job - stream: 'a?b'???? ?"
