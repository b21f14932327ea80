"""Deterministic train/val/test splits, stratified by label, grouped by `group` and near-duplicate
cluster, where each row's split depends only on its content (or group) hash and the seed."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tunewright.config import SplitConfig
from tunewright.data.duplicates import input_clusters
from tunewright.data.similarity import NearDuplicates, find_root, union_rows
from tunewright.records import Example, Preference, content_hash

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    val: list[Example]
    test: list[Example]
    units: int = 0  # groups of rows that move together (a `group` value, a near-duplicate cluster, a row)

    def by_name(self) -> dict[str, list[Example]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def manifest(self, seed: int, fractions: SplitConfig) -> dict[str, Any]:
        return {
            "seed": seed,
            "fractions": {"train": fractions.train, "val": fractions.val, "test": fractions.test},
            "units": self.units,
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


def build_splits(examples: list[Example], config: SplitConfig, clusters: NearDuplicates | None = None) -> Splits:
    """Assign every row by its unit's position in [0, 1): train below `config.train`, then val, then test.

    The trade-off, chosen on purpose: a row's position depends only on the seed, its label stratum and its
    unit key (the first row's `group` value, else that row's content hash; the first row of a unit, in
    input order, is the first row of its group or near-duplicate cluster), so
    appending rows never moves an existing one and a unit never straddles splits. The price is that the
    per-label fractions are met in expectation, not exactly: a stratum of n units lands within about
    sqrt(n * f * (1 - f)) units of its share f. Exact per-label quotas would need ranks within each stratum,
    and one appended row would then shift a boundary row of its label into another split. The manifest
    records the real per-label counts. Rows move on an append only when their unit changes: a new row that
    near-duplicates two existing clusters (or shares a group with one) joins them, and the later one follows
    the earlier; or new rows make a phrase common enough to be ignored as boilerplate, which can change
    which existing rows count as near-duplicates.
    """
    clusters = clusters if clusters is not None else input_clusters(examples)
    anchor = unit_anchors(examples, clusters)
    keys = {first: f"group:{examples[first].group}" if examples[first].group
            else content_hash(examples[first].messages) for first in set(anchor)}
    assigned: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for row, example in enumerate(examples):
        first = anchor[row]
        position = unit_position(keys[first], examples[first].label, config.seed)
        if position < config.train:
            assigned["train"].append(example)
        elif position < config.train + config.val:
            assigned["val"].append(example)
        else:
            assigned["test"].append(example)
    return Splits(**assigned, units=len(keys))


def unit_position(key: str, stratum: str | None, seed: int) -> float:
    """A number in [0, 1) fixed by the unit key, its label stratum and the seed."""
    digest = hashlib.sha256(f"{seed}:{stratum}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_position(example: Example, seed: int) -> float:
    """One row's own position in [0, 1) (its group, else its content, and its label), without clusters."""
    key = f"group:{example.group}" if example.group else content_hash(example.messages)
    return unit_position(key, example.label, seed)


def unit_anchors(examples: list[Example], clusters: NearDuplicates) -> list[int]:
    """For each row, the first row (in input order) of the unit it moves with: rows sharing a `group`
    value and rows of one near-duplicate cluster are one unit."""
    parent = list(clusters.cluster)
    first_of_group: dict[str, int] = {}
    for row, example in enumerate(examples):
        if example.group:
            union_rows(parent, first_of_group.setdefault(example.group, row), row)
    return [find_root(parent, row) for row in range(len(examples))]


@dataclass(frozen=True)
class PreferenceSplits:
    train: list[Preference]
    val: list[Preference]
    test: list[Preference]

    def by_name(self) -> dict[str, list[Preference]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def manifest(self, seed: int, fractions: SplitConfig) -> dict[str, Any]:
        return {
            "seed": seed,
            "fractions": {"train": fractions.train, "val": fractions.val, "test": fractions.test},
            "kind": "preference",
            "units": len({preference_unit(p) for rows in self.by_name().values() for p in rows}),
            "splits": {name: {"rows": len(rows), "ids": [p.id for p in rows]} for name, rows in self.by_name().items()},
        }


def preference_unit(preference: Preference) -> str:
    """Rows that move together: one `group` value, else every row with the same prompt."""
    return f"group:{preference.group}" if preference.group else preference.prompt_key


def split_preferences(preferences: list[Preference], config: SplitConfig) -> PreferenceSplits:
    """Each row by its unit's position in [0, 1), as `build_splits` does: all pairs (and KTO rows) of one
    prompt land in one split, and appending rows never moves an existing one."""
    assigned: dict[str, list[Preference]] = {name: [] for name in SPLITS}
    for preference in preferences:
        position = unit_position(preference_unit(preference), None, config.seed)
        name = "train" if position < config.train else "val" if position < config.train + config.val else "test"
        assigned[name].append(preference)
    return PreferenceSplits(**assigned)
