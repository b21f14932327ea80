"""Evaluate on the held-out test split: prompting baselines first (zero-shot, few-shot, retrieved
few-shot, OpenAI-compatible endpoints), then the fine-tuned model, generated the same way (labels
constrained to the task's label set, or whole answers to the task's output schema), scored, compared
with paired bootstrap intervals, probed and judged by the gate in the config (evaluate/scoring.py)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tunewright.config import EMBEDDING_BASELINES, Config
from tunewright.evaluate.baselines import BASELINES, BaselineInputs
from tunewright.evaluate.candidates import zero_shot_chats
from tunewright.evaluate.embedding_baselines import embedding_answers
from tunewright.evaluate.endpoint import api_key, chat_completion
from tunewright.evaluate.gate import FINETUNED
from tunewright.evaluate.generate import Chat, generate_replies
from tunewright.evaluate.label_answers import (
    LabelScorer,
    label_scoring_format,
    prepare_scorer,
    scored_answers,
)
from tunewright.evaluate.metrics import grade_rubric
from tunewright.evaluate.probes import counterfactual_examples, fairness, general_probes
from tunewright.evaluate.reply_cache import cached_replies, reply_key
from tunewright.evaluate.scoring import EvalResult, score_run
from tunewright.evaluate.task_decoding import (
    constrained_copies,
    finetuned_prompts,
    generate_answers,
    label_constraint,
    load_finetuned,
    narrowed_constraints,
)
from tunewright.modeling import load_model, load_tokenizer, resolve_base_model
from tunewright.progress import progress_bar
from tunewright.records import Example, Prediction, extract_label
from tunewright.runs import RunPaths, write_json, write_jsonl
from tunewright.timing import stage

__all__ = ["EvalResult", "evaluate_baselines", "evaluate_finetuned", "label_constraint", "score_run"]

PROBE_TOKENS = 48  # general-ability answers are short


def evaluate_baselines(config: Config, run: RunPaths, show_progress: bool = True) -> None:
    """Generate every baseline's answers on the test split (base model, no training; endpoints)."""
    test, train = test_examples(config, run), run.load_split("train")
    model_dir = resolve_base_model(config.model.base)
    tokenizer = load_tokenizer(model_dir)
    base = _LazyModel(model_dir)  # loaded on the first reply not found in the reply cache
    constraint = label_constraint(config, tokenizer, train)
    reused: list[str] = []
    for name in config.eval.candidates:
        if name in EMBEDDING_BASELINES:  # classifiers write their own predictions, with confidences
            if config.task.labels:  # a classifier needs labels; free-form tasks skip these baselines
                with stage(name):
                    _write_embedding_predictions(config, run, name, test, train)
            continue
        def generate(chats: list[Chat], name: str = name) -> list[str]:
            key = reply_key(model_dir, tokenizer, chats, config.eval.max_new_tokens, config.eval.batch_size,
                            constraint, config.task.output_schema if config.eval.constrain_schema else None,
                            copied=constrained_copies(config))
            replies, hit = cached_replies(
                key, lambda: generate_answers(config, base.get(), tokenizer, chats, name, show_progress, constraint))
            if hit:
                reused.append(name)
            return replies

        with stage(name):
            replies = BASELINES[name](BaselineInputs(config, run, test, train, generate))
            _write_predictions(config, run, name, test, replies)
    for endpoint in config.eval.endpoints:
        key = api_key(endpoint.api_key_env)
        with stage(endpoint.name):
            replies = [chat_completion(endpoint.base_url, endpoint.model, key, chat, config.eval.max_new_tokens)
                       for chat in zero_shot_chats(test, config.task.system_prompt)]
            _write_predictions(config, run, endpoint.name, test, replies)
    if config.eval.probes.forgetting:
        with stage("forgetting_probe"):
            chats = _general_chats()
            key = reply_key(model_dir, tokenizer, chats, PROBE_TOKENS, config.eval.batch_size, None)
            answers, hit = cached_replies(key, lambda: _general_answers(config, base.get(), tokenizer))
            if hit:
                reused.append("forgetting_probe")
            write_json(run.eval_dir / "probe_general_base.json", answers)
    # Which baselines' replies were read from the reply cache instead of decoded (reply_cache.py).
    write_json(run.eval_dir / "reused_replies.json", reused)
    if reused and show_progress:
        print(f"reused the base model's cached replies for: {', '.join(reused)}", file=sys.stderr)


class _LazyModel:
    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.model: Any = None

    def get(self) -> Any:
        if self.model is None:
            with stage("load_model"):
                self.model = load_model(self.model_dir)
                self.model.eval()
        return self.model


def evaluate_finetuned(config: Config, run: RunPaths, show_progress: bool = True) -> None:
    """Generate the fine-tuned model's answers on the test split, and its probe answers."""
    test, train = test_examples(config, run), run.load_split("train")
    with stage("load_model"):
        model, tokenizer = load_finetuned(config, run)
    fmt = label_scoring_format(config, train)
    prompted = finetuned_prompts(config, train)
    if fmt is not None:
        with stage("ensemble_weights"):
            scorer = prepare_scorer(config, model, tokenizer, train, run.load_split("val"), fmt, prompted)
        write_json(run.eval_dir / "label_ensemble.json", {"weights": list(scorer.weights)})
        with stage("test_answers"):
            replies = _scored(run, scorer, test, FINETUNED, show_progress)
    else:
        constraint = label_constraint(config, tokenizer, train)
        chats = zero_shot_chats(prompted(test), config.task.system_prompt)
        narrowed = narrowed_constraints(config, tokenizer, test, train)
        with stage("test_answers"):
            replies = generate_answers(config, model, tokenizer, chats, FINETUNED, show_progress, constraint, narrowed)
            _write_predictions(config, run, FINETUNED, test, replies)
    probes = config.eval.probes
    if probes.forgetting:
        with stage("forgetting_probe"):
            write_json(run.eval_dir / "probe_general_finetuned.json", _general_answers(config, model, tokenizer))
    if probes.fairness and config.task.labels:
        with stage("fairness_probe"):
            pairs = counterfactual_examples(test, probes.max_rows)
            by_id = {example.id: reply for example, reply in zip(test, replies, strict=True)}
            changed = [b for _, b in pairs]
            # Swapped inputs go through exactly what a real input goes through (retrieval shortlist included).
            if fmt is not None:
                swapped = [answer.reply for answer in scored_answers(scorer, changed)]
            else:
                chats = zero_shot_chats(prompted(changed), config.task.system_prompt)
                swapped = generate_answers(config, model, tokenizer, chats, "fairness probe", show_progress,
                                           constraint, narrowed_constraints(config, tokenizer, changed, train))
            regex = config.task.label_regex
            result = fairness(pairs, [extract_label(by_id[a.id], regex) for a, _ in pairs],
                              [extract_label(reply, regex) for reply in swapped], swapped)
            write_json(run.eval_dir / "probe_fairness.json", result)


def test_examples(config: Config, run: RunPaths) -> list[Example]:
    return run.load_split("test")[: config.eval.max_test_rows]


def _general_chats() -> list[Chat]:
    """The shipped general-ability probes, asked plainly (no task system prompt)."""
    return [[{"role": "user", "content": probe.prompt}] for probe in general_probes()]


def _general_answers(config: Config, model: Any, tokenizer: Any) -> list[str]:
    replies = generate_replies(model, tokenizer, _general_chats(), PROBE_TOKENS, config.eval.batch_size)
    return [reply.text for reply in replies]


def _scored(run: RunPaths, scorer: LabelScorer, test: list[Example], name: str, show_progress: bool) -> list[str]:
    """Label scoring's answers, written as predictions with their confidence; every row's
    probabilities go to label_scores-<name>.jsonl."""
    progress = progress_bar(f"eval {name} (label scoring)", disable=not show_progress)
    with progress:
        task_id = progress.add_task(name, total=len(test))
        answers = scored_answers(scorer, test, lambda done: progress.advance(task_id, done))
    write_jsonl(run.eval_dir / f"label_scores-{name}.jsonl",
                [{"example_id": example.id, "label": example.label, "predicted": answer.label,
                  "abstained": answer.abstained, "model": answer.model_scores,
                  "embedding": answer.embedding_scores, "final": answer.final_scores}
                 for example, answer in zip(test, answers, strict=True)])
    _write_predictions(scorer.config, run, name, test, [answer.reply for answer in answers],
                       [answer.confidence for answer in answers])
    return [answer.reply for answer in answers]


def _write_embedding_predictions(config: Config, run: RunPaths, name: str, test: list[Example],
                                 train: list[Example]) -> None:
    answers = embedding_answers(name, train, test, config.task.labels)
    _write_predictions(config, run, name, test, [answer.output for answer in answers],
                       [answer.confidence for answer in answers])


def _write_predictions(config: Config, run: RunPaths, candidate: str, test: list[Example],
                       replies: list[str], confidences: list[float | None] | None = None) -> None:
    rows = [
        Prediction(
            example_id=example.id,
            candidate=candidate,
            output=reply,
            reference=example.reference,
            label=example.label,
            predicted_label=extract_label(reply, config.task.label_regex),
            rubric=grade_rubric(config.task, reply),
            confidence=confidence,
        )
        for example, reply, confidence in zip(test, replies, confidences or [None] * len(test), strict=True)
    ]
    write_jsonl(run.predictions(candidate), [asdict(row) for row in rows])
