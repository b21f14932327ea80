"""The prompts each candidate sees: seeded few-shot picks covering the labels, shots before the input."""

from tunewright.evaluate.candidates import few_shot_chats, pick_shots, zero_shot_chats
from tunewright.records import Example, Message

LABELS = ["Account Access", "Fraud Report", "Transaction Dispute", "General Inquiry"]


def example(i: int, label: str | None = None, system: str | None = None) -> Example:
    turns = [Message("user", f"question {i}"), Message("assistant", f"answer {i}")]
    if system is not None:
        turns.insert(0, Message("system", system))
    return Example(f"ex-{i:03d}", tuple(turns), label=label)


# Unbalanced on purpose: the rare label must still be shown.
TRAIN = [example(i, LABELS[0] if i < 30 else LABELS[1 + i % 3]) for i in range(40)]


def test_pick_shots_is_deterministic_and_ignores_input_order() -> None:
    shots = pick_shots(TRAIN, 5, seed=7)
    assert [s.id for s in pick_shots(TRAIN, 5, seed=7)] == [s.id for s in shots]
    assert [s.id for s in pick_shots(list(reversed(TRAIN)), 5, seed=7)] == [s.id for s in shots]
    assert len(shots) == len({s.id for s in shots}) == 5


def test_pick_shots_depends_on_the_seed() -> None:
    picks = {tuple(s.id for s in pick_shots(TRAIN, 4, seed=seed)) for seed in range(5)}
    assert len(picks) > 1


def test_pick_shots_covers_every_label_when_k_allows() -> None:
    for seed in range(10):
        for k in (len(LABELS), len(LABELS) + 2):
            shots = pick_shots(TRAIN, k, seed)
            assert len(shots) == k
            assert {s.label for s in shots} == set(LABELS)


def test_pick_shots_with_fewer_slots_than_labels_uses_distinct_labels() -> None:
    shots = pick_shots(TRAIN, 3, seed=0)
    assert len({s.label for s in shots}) == 3


def test_pick_shots_returns_everything_when_k_exceeds_the_data() -> None:
    assert sorted(s.id for s in pick_shots(TRAIN[:3], 10, seed=0)) == [e.id for e in TRAIN[:3]]


def test_zero_shot_is_system_prompt_then_input() -> None:
    chats = zero_shot_chats([example(100)], "SYSTEM")
    assert chats == [[{"role": "system", "content": "SYSTEM"}, {"role": "user", "content": "question 100"}]]


def test_few_shot_puts_shots_after_the_system_prompt_and_before_the_input() -> None:
    shots = [example(1, system="shot system is dropped"), example(2)]
    chats = few_shot_chats([example(100), example(101)], shots, "SYSTEM")
    assert len(chats) == 2
    assert [(m["role"], m["content"]) for m in chats[0]] == [
        ("system", "SYSTEM"),
        ("user", "question 1"), ("assistant", "answer 1"),
        ("user", "question 2"), ("assistant", "answer 2"),
        ("user", "question 100"),
    ]
    assert chats[1][-1] == {"role": "user", "content": "question 101"}
    assert all(m["content"] != "answer 100" for m in chats[0])  # the reference answer is never shown


def test_few_shot_keeps_an_examples_own_system_message_first() -> None:
    chats = few_shot_chats([example(100, system="OWN")], [example(1)], "SYSTEM")
    assert [(m["role"], m["content"]) for m in chats[0]] == [
        ("system", "OWN"), ("user", "question 1"), ("assistant", "answer 1"), ("user", "question 100"),
    ]
