"""Deterministic train/val/test splits: each row's split depends only on its content hash (or its
group) and the seed, so adding rows never moves existing ones, and a group never straddles splits."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tunewright.config import SplitConfig
from tunewright.records import Example, content_hash

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    val: list[Example]
    test: list[Example]

    def by_name(self) -> dict[str, list[Example]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def manifest(self, seed: int, fractions: SplitConfig) -> dict[str, Any]:
        return {
            "seed": seed,
            "fractions": {"train": fractions.train, "val": fractions.val, "test": fractions.test},
            "splits": {
                name: {
                    "rows": len(rows),
                    "labels": dict(Counter(e.label for e in rows if e.label is not None)),
                    "ids": [e.id for e in rows],
                    "content_hashes": [content_hash(e.messages) for e in rows],
                }
                for name, rows in self.by_name().items()
            },
        }


def split_position(example: Example, seed: int) -> float:
    """A number in [0, 1) fixed by the row's group (or content) and the seed."""
    key = example.group or content_hash(example.messages)
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def build_splits(examples: list[Example], config: SplitConfig) -> Splits:
    assigned: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for example in examples:
        position = split_position(example, config.seed)
        if position < config.train:
            assigned["train"].append(example)
        elif position < config.train + config.val:
            assigned["val"].append(example)
        else:
            assigned["test"].append(example)
    return Splits(**assigned)
