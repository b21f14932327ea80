"""Which of many texts contain any of a few literal strings: one C-speed `str.find` sweep over the texts
joined, instead of a regex per text (that costs seconds at 100k rows)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from itertools import accumulate


def texts_containing(texts: list[str], needles: list[str], casefold: bool = False) -> list[int]:
    """Sorted indices of `texts` that contain at least one of `needles` (case-insensitively with
    `casefold`, in which case the needles must be lower case)."""
    separator = "\x00"
    if casefold:  # per text: lower() can change a text's length, and the offsets must stay right
        texts = [text.lower() for text in texts]
    joined = separator.join(texts)
    starts = offsets(len(text) + len(separator) for text in texts)
    # Needles that share their first two characters (chat-template tokens share "<|") are scanned once,
    # by their common prefix, and confirmed per candidate text.
    groups: dict[str, list[str]] = {}
    for needle in needles:
        groups.setdefault(needle[:2], []).append(needle)
    candidates: set[int] = set()
    for group in groups.values():
        low, high = min(group), max(group)  # their common prefix is the whole group's
        prefix = low[: next((i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b), len(low))]
        position = joined.find(prefix)
        while position != -1:
            candidates.add(bisect_right(starts, position) - 1)
            position = joined.find(prefix, position + 1)
    return sorted(row for row in candidates if any(needle in texts[row] for needle in needles))


def offsets(lengths: Iterable[int]) -> list[int]:
    """Start of each item when items of these lengths are laid end to end (for `bisect_right` lookups)."""
    return list(accumulate(lengths, initial=0))
