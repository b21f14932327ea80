"""Which of many texts contain any of a few literal strings: one C-speed `str.find` sweep over the texts
joined, instead of a regex per text (that costs seconds at 100k rows)."""

from __future__ import annotations

from bisect import bisect_right


def texts_containing(texts: list[str], needles: list[str], casefold: bool = False) -> list[int]:
    """Sorted indices of `texts` that contain at least one of `needles` (case-insensitively with
    `casefold`, in which case the needles must be lower case)."""
    separator = "\x00"
    if casefold:  # per text: lower() can change a text's length, and the offsets must stay right
        texts = [text.lower() for text in texts]
    joined = separator.join(texts)
    starts, offset = [], 0
    for text in texts:
        starts.append(offset)
        offset += len(text) + len(separator)
    # Scan once per distinct two-character prefix (chat-template tokens mostly share "<|"), then confirm.
    candidates: set[int] = set()
    for prefix in {needle[:2] for needle in needles}:
        position = joined.find(prefix)
        while position != -1:
            candidates.add(bisect_right(starts, position) - 1)
            position = joined.find(prefix, position + 1)
    return sorted(row for row in candidates if any(needle in texts[row] for needle in needles))
