"""Redact personal data before an exchange is stored: emails, phone numbers and card numbers (Luhn
checked) become typed placeholders. Never imports torch."""

from __future__ import annotations

import re

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
PHONE = re.compile(r"(?<![\w+(])\+?\(?\d[\d ().-]{7,}\d\b")


def redact(text: str) -> str:
    """`text` with emails, card numbers and phone numbers replaced by [EMAIL], [CARD], [PHONE]."""
    text = EMAIL.sub("[EMAIL]", text)
    text = CARD.sub(lambda match: "[CARD]" if _luhn(match.group()) else match.group(), text)
    return PHONE.sub(lambda match: "[PHONE]" if _phone_length(match.group()) else match.group(), text)


def _phone_length(candidate: str) -> bool:
    """9 to 15 digits (E.164); shorter runs are dates, amounts and reference numbers."""
    return 9 <= sum(c.isdigit() for c in candidate) <= 15


def _luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0
