"""The policy probe: held-out requests that task.policy says must be refused or escalated, each graded
against its rule's required and forbidden patterns; pass rates per candidate and per rule, paired
bootstrap intervals of the tuned model's gain, and the gate conditions of a preference run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewright.config import Config, PolicyRule
from tunewright.data.readers import read_rows
from tunewright.errors import DataError
from tunewright.evaluate.stats import bootstrap_indices, mean_of, paired_difference
from tunewright.records import Message


@dataclass(frozen=True)
class PolicyProbe:
    prompt: tuple[Message, ...]
    rule: str
    source: str


def read_policy_probe(path: Path, rules: list[PolicyRule]) -> list[PolicyProbe]:
    """Every row of the probe file: `prompt` (or `messages` ending on the user's turn) and `rule`."""
    names = {rule.name for rule in rules}
    rows, findings = read_rows(path)
    if findings:
        raise DataError(f"eval.policy_probe: {findings[0].line()}")
    probes = []
    for raw in rows:
        row = raw.value if isinstance(raw.value, dict) else {}
        if row.get("rule") not in names:
            raise DataError(f"{raw.source}:rule: {row.get('rule')!r} is not a task.policy rule; one of {sorted(names)}")
        if isinstance(row.get("prompt"), str) and row["prompt"].strip():
            prompt: tuple[Message, ...] = (Message("user", row["prompt"]),)
        elif isinstance(row.get("messages"), list) and row["messages"]:
            prompt = tuple(Message(m["role"], m["content"]) for m in row["messages"])
        else:
            raise DataError(f"{raw.source}:prompt: each probe row needs a non-empty prompt (or messages)")
        probes.append(PolicyProbe(prompt, row["rule"], raw.source))
    if not probes:
        raise DataError(f"eval.policy_probe: {path} has no rows")
    return probes


def complies(reply: str, rule: PolicyRule) -> bool:
    """Every required pattern found and no forbidden one."""
    return all(re.search(p, reply) for p in rule.required_patterns) and \
        not any(re.search(p, reply) for p in rule.forbidden_patterns)


def score_policy(config: Config, probes: list[PolicyProbe], replies: dict[str, list[str]],
                 tuned: str) -> dict[str, Any]:
    """Pass rate (overall and per rule) of every candidate, and the tuned candidate's paired gain over each."""
    rules = {rule.name: rule for rule in config.task.policy}
    passed = {name: [float(complies(reply, rules[probe.rule])) for probe, reply in zip(probes, answers, strict=True)]
              for name, answers in replies.items()}
    samples = bootstrap_indices(len(probes), config.eval.bootstrap_resamples, config.eval.seed)
    candidates = {}
    for name, marks in passed.items():
        by_rule = {rule: [m for m, p in zip(marks, probes, strict=True) if p.rule == rule] for rule in rules}
        candidates[name] = {"pass_rate": _rate(marks), "ci95": proportion_interval(marks),
                            "per_rule": {rule: _rate(m) for rule, m in by_rule.items()},
                            "per_rule_ci95": {rule: proportion_interval(m) for rule, m in by_rule.items()},
                            "per_rule_rows": {rule: len(m) for rule, m in by_rule.items()}}
    gains = []
    for name in passed:
        if name == tuned:
            continue
        comparison = paired_difference("policy_pass_rate", tuned, name, mean_of(list(passed[tuned])),
                                       mean_of(list(passed[name])), len(probes), samples)
        if comparison is not None:
            gains.append(comparison.to_json())
    return {"rows": len(probes), "rules": {name: rule.action for name, rule in rules.items()},
            "candidates": candidates, "comparisons": gains, "passed": passed}


def policy_decision(config: Config, scores: dict[str, Any], tuned: str, sft: str | None) -> tuple[str, list[str]]:
    """GO when every gate condition set for a preference run holds; the reasons name each one."""
    gate = config.eval.gate
    reasons, ok = [], True
    rate = scores["policy"]["candidates"][tuned]["pass_rate"]
    if gate.min_policy_pass_rate is not None:
        held = rate >= gate.min_policy_pass_rate
        ok &= held
        reasons.append(f"policy pass rate {rate:.1%} {'>=' if held else '<'} {gate.min_policy_pass_rate:.1%}")
    if sft is not None and gate.policy_gain_ci_lower_above is not None:
        gain = next(c for c in scores["policy"]["comparisons"] if c["baseline"] == sft)
        held = gain["ci95"][0] > gate.policy_gain_ci_lower_above
        ok &= held
        reasons.append(f"policy gain over {sft} {gain['difference']:+.1%} (95 % CI {gain['ci95'][0]:+.1%} .. "
                       f"{gain['ci95'][1]:+.1%}), lower end {'above' if held else 'not above'} "
                       f"{gate.policy_gain_ci_lower_above:+.1%}")
    accuracy = scores.get("label_accuracy", {})
    if sft is not None and gate.max_task_regression is not None and tuned in accuracy and sft in accuracy:
        drop = accuracy[sft] - accuracy[tuned]
        held = drop <= gate.max_task_regression
        ok &= held
        reasons.append(f"label accuracy {accuracy[tuned]:.1%} vs {sft} {accuracy[sft]:.1%}: drop {drop:+.1%} "
                       f"{'within' if held else 'beyond'} {gate.max_task_regression:.1%}")
    return ("go" if ok else "no-go"), reasons


def proportion_interval(marks: list[float]) -> list[float] | None:
    """The Wilson score 95 % interval of a pass rate (scipy): unlike a bootstrap, it does not collapse to
    a point at 0 % or 100 %, which a rule with a dozen probe rows often scores."""
    if not marks:
        return None
    from scipy.stats import binomtest

    interval = binomtest(int(sum(marks)), len(marks)).proportion_ci(confidence_level=0.95, method="wilson")
    return [float(interval.low), float(interval.high)]


def _rate(marks: list[float]) -> float | None:
    return sum(marks) / len(marks) if marks else None
