"""`eval` for a preference run (dpo, kto, orpo): every candidate (the tuned adapter, the SFT adapter it
started from, the base model) answers the held-out policy probe and is scored per rule; preference accuracy
on the held-out pairs (does the model give the chosen answer a higher log-likelihood than the rejected one);
label accuracy on the SFT run's test split; the gate; eval/policy.json and eval/policy.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tunewright.chat import encode_example, with_system_prompt
from tunewright.config import Config
from tunewright.errors import ConfigError
from tunewright.evaluate import label_constraint
from tunewright.evaluate.candidates import zero_shot_chats
from tunewright.evaluate.gate import FINETUNED
from tunewright.evaluate.generate import generate_replies
from tunewright.evaluate.policy import policy_decision, read_policy_probe, score_policy
from tunewright.modeling import load_model, load_tokenizer, load_with_adapter, resolve_base_model
from tunewright.records import Example, Message, Preference, extract_label
from tunewright.runs import RunPaths, write_json, write_text

SFT, BASE = "sft", "base"
SIDE_BY_SIDE = 12  # probe rows shown in eval/policy.md


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
    label_accuracy: dict[str, float] = {}
    for name, adapter in adapters.items():
        model = load_model(model_dir) if adapter is None else load_with_adapter(model_dir, adapter)
        model.eval()
        replies[name] = [r.text for r in generate_replies(model, tokenizer, chats, config.eval.max_new_tokens,
                                                          config.eval.batch_size)]
        preference_accuracy[name] = ranked_right(model, tokenizer, config, pairs)
        if task_test:
            answers = generate_replies(model, tokenizer, zero_shot_chats(task_test, config.task.system_prompt),
                                       config.eval.max_new_tokens, config.eval.batch_size, constraint=constraint)
            right = [extract_label(a.text, config.task.label_regex) == e.label for a, e in zip(answers, task_test,
                                                                                           strict=True)]
            label_accuracy[name] = sum(right) / len(right)
        del model
    scores: dict[str, Any] = {"policy": score_policy(config, probes, replies, FINETUNED),
                              "preference_accuracy": preference_accuracy, "label_accuracy": label_accuracy,
                              "test_pairs": len(pairs), "task_test_rows": len(task_test)}
    decision, reasons = policy_decision(config, scores, FINETUNED, SFT if sft_run else None)
    scores.update(decision=decision, decision_reasons=reasons,
                  examples=[{"prompt": probe.prompt[-1].content, "rule": probe.rule,
                             **{name: answers[row] for name, answers in replies.items()}}
                            for row, probe in enumerate(probes)])
    write_json(run.eval_dir / "policy.json", scores)
    write_text(run.eval_dir / "policy.md", policy_markdown(scores))
    return scores


def ranked_right(model: Any, tokenizer: Any, config: Config, pairs: list[Preference]) -> float | None:
    """Share of pairs whose chosen answer the model finds more likely than the rejected one."""
    if not pairs:
        return None
    right = 0
    for pair in pairs:
        chosen, rejected = (answer_logp(model, tokenizer, config, pair.prompt, side)
                            for side in (pair.chosen or "", pair.rejected or ""))
        right += chosen > rejected
    return right / len(pairs)


@torch.no_grad()
def answer_logp(model: Any, tokenizer: Any, config: Config, prompt: tuple[Message, ...], answer: str) -> float:
    """Sum of the answer's token log-probabilities (end-of-turn included) after the chat template."""
    encoded = encode_example(tokenizer, Example("", (*prompt, Message("assistant", answer))),
                             config.task.system_prompt, config.training.max_seq_len)
    ids = torch.tensor([encoded.input_ids])
    labels = torch.tensor(encoded.labels[1:])
    logits = model(input_ids=ids).logits[0, :-1].float()
    scored = labels != -100
    return float(torch.log_softmax(logits[scored], dim=-1).gather(1, labels[scored, None]).sum())


def policy_markdown(scores: dict[str, Any]) -> str:
    policy = scores["policy"]
    names = list(policy["candidates"])
    lines = [f"# Policy evaluation: {scores['decision'].upper()}", "", *(f"- {r}" for r in scores["decision_reasons"]),
             "", f"{policy['rows']} probe requests, {scores['test_pairs']} held-out pairs, "
             f"{scores['task_test_rows']} task test rows. Training curves: ../preference_curves.png "
             "(reward margin, chosen / rejected log-probabilities) and ../loss_curve.png.", "",
             "| candidate | policy pass rate | preference accuracy | label accuracy |", "|---|---|---|---|"]
    for name in names:
        pref = scores["preference_accuracy"].get(name)
        label = scores["label_accuracy"].get(name)
        lines.append(f"| {name} | {policy['candidates'][name]['pass_rate']:.1%} | "
                     f"{'-' if pref is None else f'{pref:.1%}'} | {'-' if label is None else f'{label:.1%}'} |")
    lines += ["", "| rule | action | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for rule, action in policy["rules"].items():
        rates = [policy["candidates"][name]["per_rule"][rule] for name in names]
        lines.append(f"| {rule} | {action} | " + " | ".join("-" if r is None else f"{r:.0%}" for r in rates) + " |")
    lines += ["", "| gain of the tuned model over | difference | 95 % interval |", "|---|---|---|"]
    lines += [f"| {c['baseline']} | {c['difference']:+.1%} | {c['ci95'][0]:+.1%} .. {c['ci95'][1]:+.1%} |"
              for c in policy["comparisons"]]
    lines += ["", "## Side by side", ""]
    for row, example in enumerate(scores["examples"][:SIDE_BY_SIDE]):
        lines += [f"**{example['rule']}**: {example['prompt']}", ""]
        lines += [f"- {name} ({'pass' if policy['passed'][name][row] else 'FAIL'}): {example[name]!r}"
                  for name in names]
        lines.append("")
    return "\n".join(lines)
