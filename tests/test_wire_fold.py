"""RawWire writes a plain folded header as it stands: the same bytes compat32's Header gives."""

from __future__ import annotations

from email import policy

from hypothesis import given, settings
from hypothesis import strategies as st

from notifications.compose import RAW_WIRE

COMPAT32_WIRE = policy.compat32.clone(linesep="\r\n", max_line_length=None, mangle_from_=False)
ASCII = st.text(st.characters(min_codepoint=0, max_codepoint=127, blacklist_characters="\r\n"), max_size=30)


@settings(max_examples=2000)
@given(st.lists(ASCII, min_size=1, max_size=4), st.sampled_from(["\n ", "\n\t", "\n", "\n  "]))
def test_every_header_value_is_written_as_compat32_writes_it(lines: list[str], joint: str) -> None:
    value = joint.join(lines)
    try:
        expected = COMPAT32_WIRE.fold_binary("Subject", value)
    except Exception as err:  # noqa: BLE001 - what compat32 refuses, RawWire refuses alike
        expected = type(err)
    try:
        written = RAW_WIRE.fold_binary("Subject", value)
    except Exception as err:  # noqa: BLE001
        written = type(err)
    assert written == expected


def test_a_folded_reply_header_is_written_unchanged() -> None:
    value = 'multipart/alternative;\n boundary="===============0123456789012345678=="'
    assert RAW_WIRE.fold_binary("Content-Type", value) == f"Content-Type: {value}\n".replace("\n", "\r\n").encode()
