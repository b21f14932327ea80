"""`eval` for a preference run (dpo, kto, orpo): every candidate (the tuned adapter, the SFT adapter it
started from, the base model) answers the held-out policy probe and is scored per rule; preference accuracy
on the held-out pairs (does the model give the chosen answer a higher mean log-likelihood per token than the
rejected one);
label accuracy on the SFT run's test split; the gate; eval/policy.json, and the reports (report/policy.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tunewright.chat import encode_example, with_system_prompt
from tunewright.config import Config
from tunewright.errors import ConfigError
from tunewright.evaluate.candidates import zero_shot_chats
from tunewright.evaluate.gate import FINETUNED
from tunewright.evaluate.generate import generate_replies
from tunewright.evaluate.policy import policy_decision, read_policy_probe, score_policy
from tunewright.evaluate.task_decoding import label_constraint
from tunewright.modeling import load_model, load_tokenizer, load_with_adapter, resolve_base_model
from tunewright.records import Preference, extract_label
from tunewright.report.policy import write_policy_reports
from tunewright.runs import RunPaths, write_json

SFT, BASE = "sft", "base"


def evaluate_preference_run(config: Config, run: RunPaths) -> dict[str, Any]:
    """Score every candidate, decide, write eval/policy.json and eval/policy.md; returns the result."""
    if config.eval.policy_probe is None or not config.task.policy:
        raise ConfigError("a preference run is evaluated on its policy: set task.policy and eval.policy_probe")
    probes = read_policy_probe(config.eval.policy_probe, config.task.policy)
    model_dir = resolve_base_model(config.model.base)
    tokenizer = load_tokenizer(model_dir)
    sft_run = RunPaths(config.method.init_from) if config.method.init_from else None
    adapters: dict[str, Path | None] = {FINETUNED: run.adapter, BASE: None}
    if sft_run is not None:
        adapters[SFT] = sft_run.adapter
    pairs = [p for p in run.load_preference_split("test") if p.paired]
    task_test = sft_run.load_split("test")[: config.eval.max_test_rows] if sft_run and config.task.labels else []
    constraint = label_constraint(config, tokenizer, sft_run.load_split("train")) if task_test and sft_run else None
    chats = [with_system_prompt(probe.prompt, config.task.system_prompt) for probe in probes]
    replies: dict[str, list[str]] = {}
    preference_accuracy: dict[str, float | None] = {}
    summed_accuracy: dict[str, float | None] = {}
    label_accuracy: dict[str, float] = {}
    for name, adapter in adapters.items():
        model = load_model(model_dir) if adapter is None else load_with_adapter(model_dir, adapter)
        model.eval()
        replies[name] = [r.text for r in generate_replies(model, tokenizer, chats, config.eval.max_new_tokens,
                                                          config.eval.batch_size)]
        preference_accuracy[name], summed_accuracy[name] = ranked_right(model, tokenizer, config, pairs)
        if task_test:
            answers = generate_replies(model, tokenizer, zero_shot_chats(task_test, config.task.system_prompt),
                                       config.eval.max_new_tokens, config.eval.batch_size, constraint=constraint)
            right = [extract_label(a.text, config.task.label_regex) == e.label for a, e in zip(answers, task_test,
                                                                                           strict=True)]
            label_accuracy[name] = sum(right) / len(right)
        del model
    scores: dict[str, Any] = {"policy": score_policy(config, probes, replies, FINETUNED),
                              "preference_accuracy": preference_accuracy,
                              "preference_accuracy_summed": summed_accuracy, "label_accuracy": label_accuracy,
                              "test_pairs": len(pairs), "task_test_rows": len(task_test)}
    decision, reasons = policy_decision(config, scores, FINETUNED, SFT if sft_run else None)
    scores.update(decision=decision, decision_reasons=reasons,
                  examples=[{"prompt": probe.prompt[-1].content, "rule": probe.rule,
                             **{name: answers[row] for name, answers in replies.items()}}
                            for row, probe in enumerate(probes)])
    write_json(run.eval_dir / "policy.json", scores)
    write_policy_reports(run, scores)
    return scores


def ranked_right(model: Any, tokenizer: Any, config: Config,
                 pairs: list[Preference]) -> tuple[float | None, float | None]:
    """Share of pairs whose chosen answer the model finds more likely than the rejected one, by the mean
    log-probability per answer token, and (for the record) by the summed one. A sum favours the shorter
    side whatever it says: on a dataset whose chosen answers run longer (as polite, careful ones do) the
    base model ranks almost every pair "wrong" by the sum, so the mean is the headline."""
    if not pairs:
        return None, None
    by_mean = by_sum = 0
    for pair in pairs:
        (chosen_sum, chosen_tokens), (rejected_sum, rejected_tokens) = (
            answer_logp(model, tokenizer, config, pair, side)
            for side in (pair.chosen or "", pair.rejected or ""))
        by_mean += chosen_sum / chosen_tokens > rejected_sum / rejected_tokens
        by_sum += chosen_sum > rejected_sum
    return by_mean / len(pairs), by_sum / len(pairs)


@torch.no_grad()
def answer_logp(model: Any, tokenizer: Any, config: Config, pair: Preference, answer: str) -> tuple[float, int]:
    """Sum of the answer's token log-probabilities (end-of-turn included) after the pair's prompt and the
    chat template, and the number of those tokens."""
    encoded = encode_example(tokenizer, pair.with_answer(answer), config.task.system_prompt,
                             config.training.max_seq_len)
    ids = torch.tensor([encoded.input_ids])
    labels = torch.tensor(encoded.labels[1:])
    logits = model(input_ids=ids).logits[0, :-1].float()
    scored = labels != -100
    total = torch.log_softmax(logits[scored], dim=-1).gather(1, labels[scored, None]).sum()
    return float(total), max(int(scored.sum()), 1)
