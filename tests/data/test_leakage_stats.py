"""Leakage between split files, near-duplicate clusters kept in one split, and dataset statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewright.config import SplitConfig, TaskConfig
from tunewright.data.check import check_dataset
from tunewright.data.leakage import check_leakage
from tunewright.data.split import build_splits
from tunewright.data.stats import dataset_stats
from tunewright.errors import DataError
from tunewright.records import Example, Message

TASK = TaskConfig(name="t", system_prompt="", labels=["A", "B"], label_regex=r"^(?P<label>[AB]):")


def chat_row(text: str, label: str) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": f"{label}: ok"}]}


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_leakage_names_the_held_out_row_and_the_training_row(tmp_path: Path) -> None:
    train = [chat_row(f"message {i} about topic {i * 7} with words w{i} v{i}", "A") for i in range(20)]
    write(tmp_path / "train.jsonl", train)
    write(tmp_path / "val.jsonl", [chat_row("an unrelated question about opening hours", "B"),
                                   chat_row("Message 3 about topic 21 with words w3 v3!", "A")])
    write(tmp_path / "test.jsonl", [chat_row("message 5 about topic 35 with words w5 v5 today", "B")])
    findings = check_leakage(tmp_path)
    assert [(f.code, Path(f.source).name) for f in findings] == [("leakage", "val.jsonl:2"),
                                                                 ("leakage", "test.jsonl:1")]
    assert "train.jsonl:4" in findings[0].message and "same input" in findings[0].message
    assert "train.jsonl:6" in findings[1].message and "similar" in findings[1].message


def test_check_with_a_split_dir_missing_its_files_is_an_error(tmp_path: Path) -> None:
    data = write(tmp_path / "data.jsonl", [chat_row(f"question {i} on subject {i}", "AB"[i % 2]) for i in range(8)])
    with pytest.raises(DataError, match=r"train\.jsonl"):
        check_dataset(data, TASK, split_dir=tmp_path / "nowhere")


def test_near_duplicate_clusters_and_groups_stay_in_one_split() -> None:
    examples = []
    for i in range(200):
        base = f"customer {i} reports problem {i * 3} with account {i * 11} at branch {i % 17}"
        for variant in range(3):  # three near-identical phrasings of one message
            examples.append(Example(f"{i}-{variant}", (Message("user", base + " please" * variant),
                                                       Message("assistant", "A: ok")), "A"))
    splits = build_splits(examples, SplitConfig())
    where = {e.id: name for name, rows in splits.by_name().items() for e in rows}
    assert all(where[f"{i}-0"] == where[f"{i}-1"] == where[f"{i}-2"] for i in range(200))
    assert splits.units == 200
    assert set(where.values()) == {"train", "val", "test"}


def test_label_strata_get_their_share_in_each_split() -> None:
    examples = [Example(str(i), (Message("user", f"text {i} unique {i * 13}"), Message("assistant", "x")),
                        "A" if i % 10 else "B") for i in range(5000)]
    splits = build_splits(examples, SplitConfig())
    for name, fraction in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        rows = splits.by_name()[name]
        share_b = sum(e.label == "B" for e in rows) / 500  # 500 rows are labelled B
        assert abs(share_b - fraction) < 0.05, (name, share_b)


def test_stats_count_labels_duplicates_pii_and_token_lengths(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    rows = [chat_row(f"question {i} about a topic numbered {i * 7}", "AB"[i % 2]) for i in range(30)]
    rows += [rows[0], chat_row("mail me at ann@example.com", "A")]
    data = write(tmp_path / "data.jsonl", rows)
    stats = dataset_stats(data, TASK, AutoTokenizer.from_pretrained(tiny_model_dir))
    assert (stats.rows, stats.exact_duplicates, stats.pii) == (32, 1, {"email": 1})
    assert stats.labels == {"A": 17, "B": 15}
    assert set(stats.token_percentiles) == {"p50", "p90", "p95", "p99", "p100"}
    assert sum(rows for _, _, rows in stats.histogram) == 32
    assert all("|" in line for line in stats.histogram_lines())


def test_stats_count_how_often_each_output_field_is_present(tmp_path: Path) -> None:
    task = TaskConfig(name="slots", system_prompt="", output_schema={"type": "object"})
    answers = [{"intent": "A", "slots": {"city": "Paris"}}, {"intent": "B", "slots": {}},
               {"intent": "A", "slots": {"city": "Rome", "day": "today"}}, "not json"]
    rows = [{"messages": [{"role": "user", "content": f"q{i}"},
                          {"role": "assistant", "content": json.dumps(a) if isinstance(a, dict) else a}]}
            for i, a in enumerate(answers)]
    stats = dataset_stats(write(tmp_path / "data.jsonl", rows), task, None)
    assert stats.fields == {"intent": 3, "slots.city": 2, "slots.day": 1}
