"""The fine-tuned model's labels by scoring (eval.label_scoring): each input's shortlist of labels
(the embedding classifier's top eval.retrieval_candidates, or every label) is scored by the model
(evaluate/label_scoring.py); with eval.label_ensemble the scores are combined with the embedding
classifier's probabilities, weighted as fitted on the validation split (evaluate/calibration.py).
The most probable label is the answer, its probability the confidence; under task.abstain_below the
answer is task.escalation_reply. For answers that go on after the label, the rest is generated with
the chosen label fixed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunewright.chat import answer_stop_id
from tunewright.config import Config
from tunewright.evaluate.calibration import combine, fit_weights
from tunewright.evaluate.candidates import zero_shot_chats
from tunewright.evaluate.constrained import LabelFormat, build_trie, label_format
from tunewright.evaluate.embedding_baselines import classifier_probabilities
from tunewright.evaluate.generate import Chat, generate_replies
from tunewright.evaluate.label_scoring import score_labels
from tunewright.records import Example

Progress = Callable[[int], None]
Prompted = Callable[[Sequence[Example]], list[Example]]


@dataclass(frozen=True)
class ScoredAnswer:
    reply: str
    label: str
    confidence: float
    abstained: bool
    model_scores: dict[str, float]  # the model's probabilities over the shortlist
    embedding_scores: dict[str, float]  # the embedding classifier's, over the same shortlist
    final_scores: dict[str, float]


@dataclass(frozen=True)
class LabelScorer:
    """Everything fixed before the test split is seen: the label format, the ensemble weights."""

    config: Config
    model: Any
    tokenizer: Any
    train: list[Example]
    fmt: LabelFormat
    stop_id: int
    weights: tuple[float, float]  # (model, embedding classifier) in calibration.combine
    prompted: Prompted  # the model's prompt for each input (task.neighbours: with its retrieved examples)

    def chats(self, examples: Sequence[Example]) -> list[Chat]:
        """The fine-tuned model's chats for `examples`, as training saw them (retrieved examples included)."""
        return zero_shot_chats(self.prompted(examples), self.config.task.system_prompt)


def label_scoring_format(config: Config, train: list[Example]) -> LabelFormat | None:
    """The answers' label format when label scoring applies to this task, else None."""
    task = config.task
    if not (config.eval.label_scoring and task.labels and task.label_regex and train) or task.output_schema:
        return None  # an extraction answer is decoded whole under its schema
    return label_format([example.reference for example in train], task.label_regex)


def prepare_scorer(config: Config, model: Any, tokenizer: Any, train: list[Example], val: list[Example],
                   fmt: LabelFormat, prompted: Prompted = list) -> LabelScorer:
    stop = answer_stop_id(tokenizer)
    scorer = LabelScorer(config, model, tokenizer, train, fmt, stop, (1.0, 0.0), prompted)
    if not config.eval.label_ensemble or not val:
        return scorer
    model_scores, embedding_scores = _scores(scorer, val, scorer.chats(val))
    weights = fit_weights(model_scores, embedding_scores, [example.label for example in val])
    return LabelScorer(config, model, tokenizer, train, fmt, stop, weights, prompted)


def scored_answers(scorer: LabelScorer, examples: list[Example],
                   on_batch: Progress | None = None) -> list[ScoredAnswer]:
    chats = scorer.chats(examples)  # built once: retrieval (task.neighbours) runs once per input
    model_scores, embedding_scores, final, chosen, abstained = _choices(scorer, examples, chats, on_batch)
    replies = _replies(scorer, chats, chosen, abstained)
    return [ScoredAnswer(reply, label, scores[label], held, m, e, scores)
            for reply, label, held, m, e, scores in zip(replies, chosen, abstained, model_scores, embedding_scores,
                                                        final, strict=True)]


def scored_labels(scorer: LabelScorer, examples: list[Example]) -> list[str | None]:
    """Each example's label as scored_answers chooses it (None where it abstains), without generating
    the rest of the answer."""
    *_, chosen, abstained = _choices(scorer, examples, scorer.chats(examples))
    return [None if held else label for label, held in zip(chosen, abstained, strict=True)]


def _choices(scorer: LabelScorer, examples: list[Example], chats: list[Chat],
             on_batch: Progress | None = None) -> tuple[
        list[dict[str, float]], list[dict[str, float]], list[dict[str, float]], list[str], list[bool]]:
    """The model's, the embedding classifier's and the final scores, the chosen labels and which abstain."""
    if not examples:  # nothing to embed (the classifier refuses an empty batch)
        return [], [], [], [], []
    config = scorer.config
    model_scores, embedding_scores = _scores(scorer, examples, chats, on_batch)
    final = combine(model_scores, embedding_scores, scorer.weights) if config.eval.label_ensemble else model_scores
    chosen = [max(scores, key=lambda label: scores[label]) for scores in final]
    threshold = config.task.abstain_below
    abstained = [threshold is not None and scores[label] < threshold
                 for scores, label in zip(final, chosen, strict=True)]
    return model_scores, embedding_scores, final, chosen, abstained


def _scores(scorer: LabelScorer, examples: list[Example], chats: list[Chat],
            on_batch: Progress | None = None) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """The model's and the embedding classifier's probabilities over each example's shortlist."""
    config = scorer.config
    known, probabilities = classifier_probabilities(scorer.train, examples, config.task.labels)
    count = config.eval.retrieval_candidates
    shortlists: list[list[str]] = []
    for row in probabilities:
        ranked = [known[int(i)] for i in np.argsort(-row, kind="stable")]
        shortlists.append(ranked[:count] if count else list(config.task.labels))
    model_scores = score_labels(scorer.model, scorer.tokenizer, chats, shortlists, scorer.fmt, scorer.stop_id,
                                config.eval.batch_size, on_batch)
    index = {label: i for i, label in enumerate(known)}
    embedding_scores = []
    for row, shortlist in zip(probabilities, shortlists, strict=True):
        kept = {label: float(row[index[label]]) if label in index else 0.0 for label in shortlist}
        total = sum(kept.values()) or 1.0
        embedding_scores.append({label: value / total for label, value in kept.items()})
    return model_scores, embedding_scores


def _replies(scorer: LabelScorer, chats: list[Chat], labels: list[str], abstained: list[bool]) -> list[str]:
    """Bare-label answers are the label; longer answers are generated after the chosen label."""
    config, fmt = scorer.config, scorer.fmt
    escalation = config.task.escalation_reply
    if fmt.label_only:
        return [escalation if held else fmt.before + label + fmt.after
                for label, held in zip(labels, abstained, strict=True)]
    tries = {label: build_trie(scorer.tokenizer, [label], fmt, scorer.stop_id) for label in set(labels)}
    generated = generate_replies(scorer.model, scorer.tokenizer, chats,
                                 config.eval.max_new_tokens, config.eval.batch_size,
                                 row_constraints=[tries[label] for label in labels])
    return [escalation if held else reply.text for reply, held in zip(generated, abstained, strict=True)]
