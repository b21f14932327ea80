"""Hypothesis properties: splits never move existing rows when rows are appended and never split a group;
clean is idempotent."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunewright.config import SplitConfig, TaskConfig
from tunewright.data.clean import clean_dataset
from tunewright.data.duplicates import input_clusters
from tunewright.data.split import build_splits, unit_anchors
from tunewright.records import Example, Message

WORDS = ["card", "stolen", "refund", "branch", "transfer", "pin", "locked", "fee", "loan", "app", "abroad",
         "fraud", "cash", "limit", "statement", "savings", "direct", "debit", "mortgage", "overdraft"]
text = st.lists(st.sampled_from(WORDS), min_size=3, max_size=12).map(" ".join)
label = st.sampled_from(["A", "B", "C"])
group = st.one_of(st.none(), st.sampled_from([f"g{i}" for i in range(6)]))
row = st.tuples(text, label, group)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def examples(rows: list[tuple[str, str, str | None]]) -> list[Example]:
    return [Example(f"{i}", (Message("user", body), Message("assistant", f"{tag}: ok {i}")), tag, grp)
            for i, (body, tag, grp) in enumerate(rows)]


def assignment(items: list[Example], config: SplitConfig) -> dict[str, str]:
    return {e.id: name for name, rows in build_splits(items, config).by_name().items() for e in rows}


@FAST
@given(st.lists(row, min_size=1, max_size=40), st.lists(row, min_size=1, max_size=20), st.integers(0, 5))
def test_appending_rows_never_moves_a_row_whose_unit_is_unchanged(
    first: list[tuple[str, str, str | None]], more: list[tuple[str, str, str | None]], seed: int
) -> None:
    config = SplitConfig(seed=seed)
    old, new = examples(first), examples(first + more)
    before, after = assignment(old, config), assignment(new, config)
    old_units = unit_anchors(old, input_clusters(old))
    new_units = unit_anchors(new, input_clusters(new))
    for index, example in enumerate(old):
        if old_units[index] == new_units[index]:
            assert after[example.id] == before[example.id]


def test_appending_unrelated_rows_moves_nothing() -> None:
    first = [(f"{WORDS[i % 20]} {WORDS[(i * 7) % 20]} number {i} {i * 31}", "AB"[i % 2], None) for i in range(300)]
    more = [(f"completely different message {i} about {i * 17}", "A", None) for i in range(300, 400)]
    before, after = assignment(examples(first), SplitConfig()), assignment(examples(first + more), SplitConfig())
    assert {row_id: after[row_id] for row_id in before} == before


@FAST
@given(st.lists(row, min_size=1, max_size=60), st.integers(0, 5))
def test_a_group_never_straddles_splits(rows: list[tuple[str, str, str | None]], seed: int) -> None:
    where: dict[str, set[str]] = {}
    for name, split_rows in build_splits(examples(rows), SplitConfig(seed=seed)).by_name().items():
        for example in split_rows:
            if example.group:
                where.setdefault(example.group, set()).add(name)
    assert all(len(names) == 1 for names in where.values())


@FAST
@given(st.lists(st.tuples(text, label, st.sampled_from(["", " ", "\u00a0", "\u200b", "\r\n", "  \t"])),
                min_size=1, max_size=15), st.booleans())
def test_clean_is_idempotent(rows: list[tuple[str, str, str]], redact_pii: bool) -> None:
    task = TaskConfig(name="t", system_prompt="", labels=["A", "B", "C"], label_regex=r"^(?P<label>\w+):")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.jsonl"
        source.write_text("".join(json.dumps({"prompt": f"{noise}{body} call 07700 900123{noise}",
                                              "completion": f"{tag.lower()}{noise}: ok"}) + "\n"
                                  for body, tag, noise in rows), encoding="utf-8")
        once, twice = Path(tmp) / "once.jsonl", Path(tmp) / "twice.jsonl"
        clean_dataset(source, once, task, redact_pii=redact_pii, map_labels=True)
        result = clean_dataset(once, twice, task, redact_pii=redact_pii, map_labels=True)
        assert twice.read_bytes() == once.read_bytes()
        assert result.changes == []
