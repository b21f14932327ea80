"""Personal data: each kind found with its span, checksums required for cards and IBANs, and redaction."""

from __future__ import annotations

import pytest

from tunewright.data.pii import find_pii, iban_valid, luhn_valid, redact


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("mail jane.doe@example.co.uk now", "email", "jane.doe@example.co.uk"),
        ("card 4111 1111 1111 1111 ok", "card", "4111 1111 1111 1111"),
        ("card 5500-0000-0000-0004.", "card", "5500-0000-0000-0004"),
        ("iban GB82 WEST 1234 5698 7654 32", "iban", "GB82 WEST 1234 5698 7654 32"),
        ("iban DE89370400440532013000!", "iban", "DE89370400440532013000"),
        ("ssn 123-45-6789", "national_id", "123-45-6789"),
        ("NI AB 12 34 56 C", "national_id", "AB 12 34 56 C"),
        ("call +44 7700 900123", "phone", "+44 7700 900123"),
        ("call (555) 123-4567", "phone", "(555) 123-4567"),
        ("call 07700900123", "phone", "07700900123"),
    ],
)
def test_each_kind_is_found(text: str, kind: str, value: str) -> None:
    (match,) = find_pii(["nothing here", text])
    assert (match.text_index, match.kind, text[match.start:match.end]) == (1, kind, value)


@pytest.mark.parametrize("text", ["card 4111 1111 1111 1112", "iban GB82 WEST 1234 5698 7654 33",
                                  "paid £450 on 12/03/2024", "order 12345678", "ref (ref 123456)"])
def test_lookalikes_without_a_valid_checksum_or_shape_are_ignored(text: str) -> None:
    assert find_pii([text]) == []


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")


def test_redact_uses_typed_placeholders() -> None:
    assert redact("to a@b.io, card 4111 1111 1111 1111, tel +44 7700 900123") == (
        "to <EMAIL>, card <CARD>, tel <PHONE>", ["email", "card", "phone"])
