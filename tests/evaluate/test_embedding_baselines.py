"""The embedding baselines: scikit-learn classifiers on the packaged MiniLM embeddings, scored like
every candidate; the gate says when one of them is enough for the label on its own."""

from __future__ import annotations

import numpy as np
import pytest

from tunewright.config import GateConfig
from tunewright.evaluate.embedding_baselines import (
    EMBEDDING_CLASSIFIER,
    EMBEDDING_KNN,
    classifier_probabilities,
    embedding_answers,
)
from tunewright.evaluate.gate import decide, label_without_llm
from tunewright.evaluate.metrics import CandidateMetrics
from tunewright.records import Example, Message

LABELS = ["card", "hours", "rate"]
TRAIN = [
    ("card", "someone stole my bank card"), ("card", "my debit card is missing"),
    ("hours", "when does the branch open"), ("hours", "what time do you close on saturday"),
    ("rate", "what exchange rate do you use"), ("rate", "how much is one euro in dollars"),
]


def example(example_id: str, text: str, label: str | None) -> Example:
    return Example(example_id, (Message("user", text), Message("assistant", f"[{label}] thanks")), label=label)


@pytest.fixture(scope="module")
def train() -> list[Example]:
    return [example(f"t{i}", text, label) for i, (label, text) in enumerate(TRAIN)]


def test_classifier_probabilities_sum_to_one_over_the_labels_seen(train: list[Example]) -> None:
    queries = [example("q", "I lost my card yesterday", "card")]
    known, probabilities = classifier_probabilities(train, queries, LABELS)
    assert known == LABELS and probabilities.shape == (1, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0)


@pytest.mark.parametrize("name", [EMBEDDING_KNN, EMBEDDING_CLASSIFIER])
def test_embedding_baselines_find_the_label_by_meaning(train: list[Example], name: str) -> None:
    queries = [example("q1", "my credit card was taken from my bag", "card"),
               example("q2", "are you open on sunday morning", "hours")]
    answers = embedding_answers(name, train, queries, LABELS)
    assert [answer.label for answer in answers] == ["card", "hours"]
    # The answer is a training answer of the predicted label, so reply metrics score it too.
    assert answers[0].output in {"[card] thanks"}
    if name == EMBEDDING_CLASSIFIER:
        assert all(answer.confidence is not None and 0 < answer.confidence <= 1 for answer in answers)
    else:
        assert all(answer.confidence is None for answer in answers)


def metrics(accuracy: float, rubric: float | None = None) -> CandidateMetrics:
    return CandidateMetrics(rows=10, label_accuracy=accuracy, macro_f1=accuracy, rubric_pass_rate=rubric,
                            rubric={}, no_label_rate=0.0)


def test_an_embedding_classifier_is_the_best_baseline_and_can_be_enough() -> None:
    gate = GateConfig(metric="label_accuracy", beat_by=0.05)
    candidates = {"finetuned": metrics(0.82, rubric=0.9), "zero_shot": metrics(0.3, rubric=0.6),
                  "embedding_classifier": metrics(0.85, rubric=0.0), "embedding_knn": metrics(0.8, rubric=0.1)}
    assert decide(gate, candidates).best_baseline == "embedding_classifier"
    found = label_without_llm(gate, candidates)
    assert found is not None and found["candidate"] == "embedding_classifier"
    assert found["finetune_needed"] is False and set(found["finetune_adds"]) == {"rubric_pass_rate"}


def test_no_embedding_verdict_when_it_does_not_pass_on_its_own() -> None:
    gate = GateConfig(metric="label_accuracy", beat_by=0.05)
    candidates = {"finetuned": metrics(0.9), "few_shot": metrics(0.84), "embedding_classifier": metrics(0.85)}
    assert label_without_llm(gate, candidates) is None
