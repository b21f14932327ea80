"""The preference checks, table-driven like test_cases.py: one small file per defect under
tests/data/preference_cases/, checked end to end (tiny model's chat template included) for exactly the
findings expected, by code, line and field; plus the record round trip and the prompt-grouped split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tunewright.config import SplitConfig, TaskConfig
from tunewright.data.check import check_dataset
from tunewright.data.preference_check import length_bias
from tunewright.data.preferences import rows_to_preferences
from tunewright.data.readers import RawRow
from tunewright.data.split import split_preferences
from tunewright.records import Message, Preference

CASES = Path(__file__).parent / "preference_cases"
TASK = TaskConfig(name="support", system_prompt="Be careful.")
MAX_SEQ_LEN = 256

TABLE = [
    ("clean_pairs.jsonl", []),
    ("clean_chat_pairs.jsonl", []),
    ("clean_kto.jsonl", []),
    ("identical_sides.jsonl", [("error", "identical-sides", "3", "rejected")]),
    ("empty_side.jsonl", [("error", "empty-side", "4", "chosen")]),
    ("missing_rejected.jsonl", [("error", "missing-field", "2", "rejected")]),
    ("wrong_type.jsonl", [("error", "wrong-type", "3", "chosen")]),
    ("contradicting.jsonl", [("error", "contradicting-preferences", "4", None)]),
    ("kto_contradicting.jsonl", [("error", "contradicting-preferences", "3", None)]),
    ("kto_label_type.jsonl", [("error", "wrong-type", "2", "label")]),
    ("pairs_and_kto_rows.jsonl", []),
    ("last_turn_not_user.jsonl", [("error", "last-turn-not-user", "3", "messages")]),
    ("duplicate_pair.jsonl", [("warning", "duplicate-pair", "5", None)]),
    ("near_duplicate_pair.jsonl", [("warning", "near-duplicate-pair", "5", None)]),
    ("length_bias.jsonl", [("warning", "length-bias", "", None)]),
    ("pii_prompt.jsonl", [("warning", "pii", "3", "messages[0]")]),
    ("special_token_rejected.jsonl", [("error", "special-token", "4", "messages[1]")]),
    ("refusal_chosen.jsonl", [("warning", "refusal", "3", "messages[1]")]),
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> object:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_every_case_file_is_in_the_table() -> None:
    assert sorted(path.name for path in CASES.iterdir()) == sorted(name for name, _ in TABLE)


@pytest.mark.parametrize(("name", "expected"), TABLE, ids=[name for name, _ in TABLE])
def test_each_case_gives_exactly_its_findings(name: str, expected: list[tuple[str, str, str, str | None]],
                                              tokenizer: object) -> None:
    path = CASES / name
    report = check_dataset(path, TASK, tokenizer, MAX_SEQ_LEN, method="dpo")  # type: ignore[arg-type]
    assert report.preferences and not report.examples
    found = [(f.severity, f.code, f.source.removeprefix(str(path)).removeprefix(":"), f.field)
             for f in report.findings if f.code != "too-few-examples"]
    assert sorted(found, key=str) == sorted(expected, key=str)


def test_length_bias_names_the_ratio() -> None:
    report = check_dataset(CASES / "length_bias.jsonl", TASK)
    (finding,) = [f for f in report.findings if f.code == "length-bias"]
    assert "x as long" in finding.message and "longer in 100% of pairs" in finding.message


@pytest.mark.parametrize(("chosen_length", "rejected_lengths", "warns"), [
    (120, [100] * 20, True),              # 1.2x and longer in every pair: a small gap, always one way
    (120, [100] * 15 + [130] * 5, True),  # longer in 75 % of pairs, 1.1x on average
    (100, [100] * 20, False),             # the same lengths
    (200, [100] * 10 + [300] * 10, False),  # longer in half the pairs, however large the gaps
    (105, [100] * 20, False),             # one way, but within 10 %
    (150, [100] * 9, False),              # too few pairs to call it a bias
])
def test_length_bias_threshold(chosen_length: int, rejected_lengths: list[int], warns: bool) -> None:
    preferences = [Preference(str(n), (Message("user", f"question {n}"),), "c" * chosen_length, "r" * length)
                   for n, length in enumerate(rejected_lengths)]
    assert bool(length_bias(preferences, "pairs.jsonl")) is warns


def test_kto_rows_keep_their_side_and_records_round_trip() -> None:
    rows = [RawRow("f:1", {"prompt": "Hi", "completion": "Hello, how can I help?", "label": True}),
            RawRow("f:2", {"prompt": "Hi", "completion": "What.", "label": False})]
    (good, bad), findings = rows_to_preferences(rows)
    assert not findings and (good.chosen, good.rejected) == ("Hello, how can I help?", None)
    assert (bad.chosen, bad.rejected) == (None, "What.") and not good.paired
    for preference in (good, bad):
        assert Preference.from_json(json.loads(json.dumps(preference.to_json()))) == preference


def test_split_keeps_every_row_of_one_prompt_together() -> None:
    rows = [RawRow(f"f:{i}", {"prompt": f"question {i % 40}", "chosen": f"good answer {i}", "rejected": f"bad {i}"})
            for i in range(200)]
    preferences, _ = rows_to_preferences(rows)
    splits = split_preferences(preferences, SplitConfig())
    where = {p.prompt_key: name for name, part in splits.by_name().items() for p in part}
    assert all(where[p.prompt_key] == name for name, part in splits.by_name().items() for p in part)
    assert sum(len(part) for part in splits.by_name().values()) == 200 and len(set(where.values())) == 3
    again = split_preferences(list(preferences), SplitConfig())
    assert again == splits
    more, _ = rows_to_preferences([RawRow("g:1", {"prompt": "a new question", "chosen": "x", "rejected": "y"})])
    grown = split_preferences([*preferences, *more], SplitConfig())
    assert all(p in getattr(grown, name) for name, part in splits.by_name().items() for p in part)


def test_clean_normalises_both_sides_of_a_pair_and_drops_repeats(tmp_path: Path) -> None:
    from tunewright.data.clean import clean_dataset

    source = tmp_path / "pairs.jsonl"
    rows = [{"prompt": "Can I  give you my PIN?\u200b", "chosen": "We never ask for it.  ", "rejected": "Sure.\r\n"},
            {"prompt": "Can I  give you my PIN?\u200b", "chosen": "We never ask for it.  ", "rejected": "Sure.\r\n"},
            {"prompt": "Hi", "chosen": "", "rejected": "x"}]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = clean_dataset(source, tmp_path / "clean.jsonl", TASK)
    (kept,) = [json.loads(line) for line in (tmp_path / "clean.jsonl").read_text().splitlines()]
    assert kept == {"prompt": "Can I  give you my PIN?", "chosen": "We never ask for it.", "rejected": "Sure."}
    assert sorted(change["action"] for change in result.changes if "field" not in change) == \
        ["drop-duplicate", "drop-unusable"]
