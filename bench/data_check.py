"""`data check` at 100k rows: generates realistic fintech-support rows with planted problems (exact and
near duplicates, label variants, conflicts, personal data, answers truncation cuts, ...) in a temp dir,
times the function the CLI calls end to end (config, tokenizer, every check, with the packaged model's
chat template), and measures recall of the planted problems and the process's peak resident memory.

    TUNEWRIGHT_CACHE=/tmp/twcache .venv/bin/python bench/data_check.py --json bench/results/data_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

from tunewright.config import load_config
from tunewright.data.check import check_dataset
from tunewright.data.lengths import token_lengths
from tunewright.modeling import load_tokenizer, resolve_base_model

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fintech-support"
PLANTS = {  # kind -> (rows planted, finding code that must name the row's line)
    "exact-duplicate": (300, "duplicate"),
    "near-duplicate": (300, "near-duplicate"),  # or near-conflicting-labels, when its cluster has both
    "conflict": (150, "conflicting-labels"),
    "label-variant": (150, "label-variant"),
    "unknown-label": (50, "unknown-label"),
    "pii": (400, "pii"),
    "too-long": (60, "too-long"),
    "refusal": (40, "refusal"),
    "special-token": (40, "special-token"),
    "invalid-json": (30, "invalid-json"),
}
PII_SAMPLES = ["write to {name}.{n}@example.com", "call me on +44 7700 9{n:05d}", "my card 4111 1111 1111 1111",
               "IBAN GB82 WEST 1234 5698 7654 32", "SSN 123-45-{n:04d}", "email {name}{n}@mail.co.uk"]
VARIANTS = ["fraud report.", "FRAUD REPORT", "Fraud  report", "account access!", "general inquiry"]


class Markov:
    """A word-bigram chain over the example's texts: varied, realistic-looking sentences."""

    def __init__(self, texts: list[str]) -> None:
        self.next: dict[str, list[str]] = defaultdict(list)
        self.starts = []
        for text in texts:
            words = text.split()
            self.starts.append(words[0])
            for left, right in zip(words, [*words[1:], "<end>"], strict=True):
                self.next[left].append(right)

    def sentence(self, rng: random.Random, low: int, high: int) -> str:
        words = [rng.choice(self.starts)]
        while len(words) < high:
            following = rng.choice(self.next.get(words[-1]) or ["<end>"])
            if following == "<end>":
                if len(words) >= low:
                    break
                following = rng.choice(self.starts)
            words.append(following)
        return " ".join(words)


def generate(path: Path, rows: int, seed: int) -> dict[int, str]:
    """Write `rows` JSONL lines; returns line -> planted kind."""
    rng = random.Random(seed)
    source = [json.loads(line) for line in (EXAMPLE / "data.jsonl").read_text(encoding="utf-8").splitlines()]
    inputs = Markov([row["input"] for row in source])
    replies = Markov([re.sub(r"^\[Intent: [^\]]+\] ", "", row["output"]) for row in source])
    labels = sorted({re.match(r"\[Intent: ([^\]]+)\]", row["output"]).group(1) for row in source})  # type: ignore[union-attr]
    instruction = source[0]["instruction"]
    kinds = [kind for kind, (count, _) in PLANTS.items() for _ in range(count)]
    planted_at = dict(zip(rng.sample(range(1000, rows), len(kinds)), kinds, strict=True))
    lines: list[str] = []
    clean: list[dict[str, str]] = []  # rows without a planted problem: the ones plants copy
    planted: dict[int, str] = {}
    for index in range(rows):
        kind = planted_at.get(index)
        label = rng.choice(labels)
        row = {"instruction": instruction,
               "input": f"{inputs.sentence(rng, 12, 40)} (ref {rng.randrange(10**6)})",
               "output": f"[Intent: {label}] {replies.sentence(rng, 20, 55)}"}
        earlier = clean[rng.randrange(len(clean))] if clean else row
        if kind == "exact-duplicate":
            row = dict(earlier)
        elif kind == "near-duplicate":
            words = earlier["input"].split()
            words[rng.randrange(len(words) - 2)] = rng.choice(["really", "honestly", "today", "now"])
            row = {**row, "input": " ".join(words).upper(), "output": earlier["output"] + " Thanks."}
        elif kind == "conflict":
            other = next(x for x in labels if x not in earlier["output"])
            row = {**earlier, "input": "  " + earlier["input"].lower(), "output": f"[Intent: {other}] Okay."}
        elif kind == "label-variant":
            row["output"] = f"[Intent: {rng.choice(VARIANTS)}] {replies.sentence(rng, 20, 55)}"
        elif kind == "unknown-label":
            row["output"] = f"[Intent: Loan Request] {replies.sentence(rng, 20, 55)}"
        elif kind == "pii":
            sample = rng.choice(PII_SAMPLES).format(name=rng.choice(["ann", "bo", "li"]), n=rng.randrange(10**4))
            row["input"] = f"{row['input']} {sample}"
        elif kind == "too-long":
            row["output"] += " " + " ".join(replies.sentence(rng, 40, 60) for _ in range(6))
        elif kind == "refusal":
            row["output"] = f"[Intent: {label}] As an AI language model, I cannot help with that."
        elif kind == "special-token":
            row["input"] += " <|im_end|>"
        if kind == "invalid-json":
            lines.append(json.dumps(row)[:-2])
        else:
            lines.append(json.dumps(row))
        if kind is None:
            clean.append(row)
        if kind is not None:
            planted[index + 1] = kind
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return planted


def recall(report_findings: list[object], planted: dict[int, str], path: Path) -> dict[str, tuple[int, int]]:
    """kind -> (found, planted); a plant is found when a finding of its code points at its line (a grouped
    label-variant finding covers every row of the variant it names)."""
    at: dict[int, set[str]] = defaultdict(set)
    variants: set[str] = set()
    for finding in report_findings:
        source, code, message = finding.source, finding.code, finding.message  # type: ignore[attr-defined]
        line = source.rsplit(":", 1)[-1]
        if line.isdigit():
            at[int(line)].add(code)
        if code == "label-variant":
            variants.add(message.split("' x", 1)[0].lstrip("'"))
    lines = (path.read_text(encoding="utf-8").splitlines())
    result: dict[str, list[int]] = {kind: [0, 0] for kind in PLANTS}
    for line, kind in planted.items():
        code = PLANTS[kind][1]
        found = code in at[line] or (kind == "near-duplicate" and "near-conflicting-labels" in at[line])
        if kind == "label-variant":
            found = any(f"[Intent: {variant}]" in lines[line - 1] for variant in variants)
        result[kind][0] += found
        result[kind][1] += 1
    return {kind: (found, total) for kind, (found, total) in result.items()}


def unplanted_near_duplicates(report_findings: list[object], planted: dict[int, str]) -> int:
    """Near-duplicate findings on rows without a plant: the Markov text reuses phrases of 440 originals,
    so some generated rows are near-copies of others by chance."""
    count = 0
    for finding in report_findings:
        line = finding.source.rsplit(":", 1)[-1]  # type: ignore[attr-defined]
        if finding.code in ("near-duplicate", "near-conflicting-labels") and line.isdigit() \
                and int(line) not in planted:  # type: ignore[attr-defined]
            count += 1
    return count


def peak_rss_mib() -> float:
    """The process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # as the CLI sets it; the length check overrides
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        planted = generate(data, args.rows, args.seed)
        config_file = Path(tmp) / "tunewright.yaml"
        config = yaml.safe_load((EXAMPLE / "tunewright.yaml").read_text(encoding="utf-8"))
        config["data"]["path"] = "data.jsonl"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        resolve_base_model(config["model"]["base"])  # build the model cache outside the timing, once

        rss_before = peak_rss_mib()
        started, cpu_started = time.perf_counter(), time.process_time()
        loaded = load_config(config_file)
        tokenizer = load_tokenizer(resolve_base_model(loaded.model.base))
        setup = time.perf_counter() - started
        report = check_dataset(loaded.data.path, loaded.task, tokenizer, loaded.training.max_seq_len,
                               method=loaded.method.name)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        rss_peak = peak_rss_mib()

        sample = report.examples[:2000]
        began = time.perf_counter()
        token_lengths(sample, tokenizer, loaded.task.system_prompt)
        fast = time.perf_counter() - began
        began = time.perf_counter()
        for example in sample:
            tokenizer.apply_chat_template([{"role": "system", "content": loaded.task.system_prompt},
                                           *({"role": m.role, "content": m.content} for m in example.messages)],
                                          tokenize=True)
        per_row = time.perf_counter() - began
        found = recall(report.findings, planted, data)
        file_mib = data.stat().st_size / (1 << 20)
        unplanted = unplanted_near_duplicates(report.findings, planted)
    total_found = sum(f for f, _ in found.values())
    total = sum(t for _, t in found.values())
    load = os.getloadavg()
    print(f"data check on {args.rows:,} rows ({len(planted)} planted problems), load average {load[0]:.1f}")
    print(f"| stage | seconds |\n|---|---|\n| config + tokenizer | {setup:.2f} |\n| check_dataset | "
          f"{seconds - setup:.2f} |\n| total | {seconds:.2f} |\n\nCPU time of the process over the same span: "
          f"{cpu_seconds:.2f} s (wall minus CPU is mostly waiting for a core while others run)")
    print(f"\npeak resident memory of the process: {rss_peak:,.0f} MiB after the check ({rss_before:,.0f} MiB "
          f"before it: the generated rows and Python); file {file_mib:.1f} MiB")
    print(f"\ntoken lengths of 2,000 rows: batched {fast:.2f} s vs per-row apply_chat_template {per_row:.2f} s")
    print("\n| planted | found | recall |\n|---|---|---|")
    for kind, (hit, count) in found.items():
        print(f"| {kind} | {hit}/{count} | {hit / count:.0%} |")
    print(f"| all | {total_found}/{total} | {total_found / total:.1%} |")
    print(f"findings: {len(report.errors)} errors, {len(report.warnings)} warnings; near-duplicate findings on "
          f"rows without a plant: {unplanted}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "rows": args.rows, "peak_rss_mib": rss_peak, "peak_rss_mib_before_check": rss_before,
            "file_mib": file_mib, "seconds": seconds, "cpu_seconds": cpu_seconds, "setup_seconds": setup,
            "recall": total_found / total,
            "recall_by_kind": {kind: hit / count for kind, (hit, count) in found.items()},
            "findings": {"errors": len(report.errors), "warnings": len(report.warnings),
                         "unplanted_near_duplicates": unplanted},
            "token_lengths_2000_rows": {"batched": fast, "per_row_template": per_row},
            "load_average_1min": load[0], "cpus": os.cpu_count(),
        }, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
