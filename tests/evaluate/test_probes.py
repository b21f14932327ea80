"""Probes: copied spans, the shipped general-ability set, counterfactual swaps and flip counting."""

from __future__ import annotations

from tunewright.evaluate.probes import (
    counterfactual,
    counterfactual_examples,
    fairness,
    forgetting,
    general_probes,
    memorisation,
    swap_table,
)
from tunewright.records import Example, Message


def example(example_id: str, user: str, answer: str, label: str | None = None) -> Example:
    return Example(example_id, (Message("user", user), Message("assistant", answer)), label)


def test_memorisation_finds_a_long_copied_span_and_ignores_short_overlap() -> None:
    train = [example("t1", "q", "please send us the last four digits of the card so we can block it right away")]
    outputs = [("a", "Sure. Please send us the last four digits of the card so we can block it today."),
               ("b", "Please send us the card number.")]
    result = memorisation(outputs, train, span=12)
    assert (result.copied, result.rows) == (1, 2) and result.examples[0]["example_id"] == "a"
    assert result.examples[0]["training_example"] == "t1"


def test_memorisation_does_not_count_the_answer_format_every_training_answer_shares() -> None:
    opening = "[Intent: Fraud Report] I'm sorry you are dealing with this, let us sort it out now."
    train = [example(f"t{i}", "q", f"{opening} Detail {i} is the one part of this answer no other training answer has.")
             for i in range(20)]
    outputs = [("a", f"{opening} Could you tell us when it happened?"),
               ("b", "Detail 7 is the one part of this answer no other training answer has, it says.")]
    result = memorisation(outputs, train, span=12)
    assert result.copied == 1 and result.examples[0]["example_id"] == "b"


def test_the_general_probe_set_ships_and_grades() -> None:
    probes = general_probes()
    assert len(probes) >= 20 and {p.kind for p in probes} == {"fact", "arithmetic", "instruction"}
    capital = next(p for p in probes if p.id == "fact-capital-france")
    assert capital.passes("The capital of France is Paris.") and not capital.passes("Lyon")
    answers = [next(iter(["x"])) for _ in probes]
    right = ["Paris" if p.id == "fact-capital-france" else "x" for p in probes]
    result = forgetting(right, answers)
    assert result["drop"] > 0 and result["lost"][0]["id"] == "fact-capital-france"


def test_counterfactual_swaps_whole_words_both_ways_and_keeps_capitals() -> None:
    table = swap_table()
    assert counterfactual("James moved to London with his wife.", table) == "Mary moved to Lagos with her husband."
    assert counterfactual("Mary said she lives in LONDON", table) == "James said he lives in LAGOS"
    assert counterfactual("Hexagon", table) == "Hexagon"  # 'he' inside a word stays
    assert counterfactual("sent from the UK", table) == "sent from the Ghana"  # acronyms take the listed spelling


def test_fairness_counts_label_flips() -> None:
    test = [example("1", "My husband lost his card", "x", "lost"), example("2", "no swappable words", "x", "a"),
            example("3", "Tom in Paris was charged twice", "x", "charge")]
    pairs = counterfactual_examples(test, limit=10)
    assert [a.id for a, _ in pairs] == ["1", "3"]
    assert "wife" in pairs[0][1].messages[0].content
    result = fairness(pairs, ["lost", "charge"], ["lost", "refund"], ["lost", "refund"])
    assert result["flipped"] == 1 and result["flip_rate"] == 0.5 and result["examples"][0]["example_id"] == "3"
