"""Slot F1 of the 2017 engines (from the metrics files shipped with the SNIPS benchmark) beside
tunewright's candidates (from a run's eval predictions), per intent and over all intents, in one table;
writes the same as JSON.

Usage: python examples/snips-slots/compare_2017.py [--run RUN_DIR] [--snips SNIPS_DIR] [--json OUT]
(JSON by default to bench/results/snips_slots.json with --run, bench/results/snips_2017.json without.)

Slot F1 here is micro F1 over (slot name, exact value) pairs of the validate queries, the same count
for every row of the table. The 2017 files give per-slot precision and recall for three random draws
of 70 training queries (Snips NLU also once on the full ~2,000): true positives = recall x the slot's
count in the validate queries, predictions = true positives / precision, summed over slots and intents,
then averaged over the three draws. A slot with no true positive gives no count of its false
positives: they are taken as zero, which can only flatter the 2017 engine. The benchmark scored
date/time and location slots of API.ai, Wit.ai and Alexa leniently (a slot of the right type counted
as right; BENCHMARK-README.md), which flatters them too. With --run, the fine-tuned adapter's slot F1
minus each prompting baseline's comes with a 95 % paired bootstrap interval over the test rows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunewright.evaluate.stats import bootstrap_indices, paired_difference

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parents[1] / "bench" / "results"
# The shared folder beside the checkout (../shared from the repository root), or $SNIPS_NLU_2017.
SHARED_SNIPS = HERE.parents[1].parent / "shared" / "datasets" / "snips-nlu-2017"
DEFAULT_SNIPS = Path(os.environ.get("SNIPS_NLU_2017", SHARED_SNIPS))
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 2000, 0
CANDIDATES = ("finetuned", "zero_shot", "few_shot", "retrieved_few_shot")
ENGINES = {"Alexa": "Alexa_metrics.json", "LUIS": "Luis_metrics.json", "Wit.ai": "Wit_metrics.json",
           "API.ai": "api.ai_metrics.json", "Snips NLU": "Snips_metrics.json"}


def gold_counts(snips: Path, intent: str) -> Counter[str]:
    data = json.loads((snips / intent / f"validate_{intent}.json").read_text(encoding="utf-8"))[intent]
    return Counter(piece["entity"] for query in data for piece in query["data"] if "entity" in piece)


def engine_counts(metrics: dict[str, Any], intent: str, size: str, draw: int,
                  gold: Counter[str]) -> tuple[float, float, float]:
    """(true positives, false positives, false negatives) of one engine, one draw, one intent."""
    tp = fp = fn = 0.0
    for slot, support in gold.items():
        found = metrics["intents"][intent]["slots"].get(slot)
        recall = _number(found["recall"][size][draw]) if found else 0.0
        precision = _number(found["precision"][size][draw]) if found else 0.0
        hits = recall * support
        tp += hits
        fn += support - hits
        fp += hits / precision - hits if precision > 0 else 0.0
    return tp, fp, fn


def engine_f1(snips: Path, file: str, wanted: str, intents: list[str]) -> dict[str, float] | None:
    """Slot F1 per intent and over all (key "all"), averaged over the file's draws of `wanted` queries
    ("full": the one size a *_full file holds)."""
    per_draw: list[dict[str, tuple[float, float, float]]] = []
    for intent in intents:
        path = snips / intent / file
        if not path.is_file():
            return None
        metrics = json.loads(path.read_text(encoding="utf-8").replace("NaN", "null"))
        sizes = metrics["intents"][intent]["recall"]
        size = next(iter(sizes)) if wanted == "full" else wanted  # the full files hold one size each (~2,000)
        draws = sizes.get(size)
        if draws is None:
            return None
        while len(per_draw) < len(draws):
            per_draw.append({})
        for draw in range(len(draws)):
            per_draw[draw][intent] = engine_counts(metrics, intent, size, draw, gold_counts(snips, intent))
    scores = [{**{intent: f1(*counts) for intent, counts in draw.items()},
               "all": f1(*(sum(c[i] for c in draw.values()) for i in range(3)))} for draw in per_draw]
    return {key: sum(s[key] for s in scores) / len(scores) for key in scores[0]}


def run_rows(run: Path, candidate: str) -> list[dict[str, Any]] | None:
    """Per test row of one tunewright candidate: id, gold intent, slot-pair counts, intent right, valid JSON."""
    predictions = run / "eval" / f"predictions-{candidate}.jsonl"
    if not predictions.is_file():
        return None
    scored = []
    for line in predictions.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        gold = json.loads(row["reference"])
        try:
            answer = json.loads(row["output"])
        except json.JSONDecodeError:
            answer = None
        valid = isinstance(answer, dict)
        answer = answer if isinstance(answer, dict) else {}
        slots = answer.get("slots") if isinstance(answer.get("slots"), dict) else {}
        gold_pairs = Counter(gold["slots"].items())
        found = Counter((str(k), json.dumps(v) if not isinstance(v, str) else v) for k, v in slots.items())
        matched = sum((gold_pairs & found).values())
        scored.append({"id": row["example_id"], "intent": gold["intent"], "valid": valid,
                       "intent_right": answer.get("intent") == gold["intent"],
                       "counts": (matched, sum(found.values()) - matched, sum(gold_pairs.values()) - matched)})
    return scored


def run_f1(rows: list[dict[str, Any]], intents: list[str]) -> dict[str, float]:
    """Slot F1 per intent and over all of one candidate's rows, plus intent accuracy and validity."""
    totals: dict[str, list[int]] = {intent: [0, 0, 0] for intent in intents}
    for row in rows:
        counts = totals.setdefault(row["intent"], [0, 0, 0])
        for i in range(3):
            counts[i] += row["counts"][i]
    scores = {intent: f1(*counts) for intent, counts in totals.items()}
    scores["all"] = f1(*(sum(c[i] for c in totals.values()) for i in range(3)))
    return {**scores, "intent_accuracy": sum(r["intent_right"] for r in rows) / len(rows),
            "valid_json": sum(r["valid"] for r in rows) / len(rows)}


def slot_f1_differences(candidates: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """finetuned - each baseline in slot F1 (all intents), with tunewright's paired bootstrap interval
    (the same resampled test rows for both; 95 %, evaluate/stats.py)."""
    tuned = candidates.get("finetuned")
    if tuned is None:
        return {}

    def score(rows: list[dict[str, Any]]) -> Callable[[Sequence[int]], float]:
        return lambda indices: f1(*(sum(rows[i]["counts"][k] for i in indices) for k in range(3)))

    samples = bootstrap_indices(len(tuned), BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)
    found = {}
    for name, rows in candidates.items():
        if name == "finetuned":
            continue
        if [r["id"] for r in rows] != [r["id"] for r in tuned]:
            raise SystemExit(f"predictions-{name}.jsonl and predictions-finetuned.jsonl hold different test rows")
        comparison = paired_difference("slot_f1", "finetuned", name, score(tuned), score(rows), len(tuned), samples)
        if comparison is not None:
            found[name] = {"difference": comparison.difference, "ci95": list(comparison.ci95)}
    return found


def f1(tp: float, fp: float, fn: float) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def _number(value: Any) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a tunewright run directory of this example")
    parser.add_argument("--snips", type=Path, default=DEFAULT_SNIPS, help="the SNIPS folder (or $SNIPS_NLU_2017)")
    parser.add_argument("--json", type=Path, help="default bench/results/snips_slots.json with --run, "
                                                  "bench/results/snips_2017.json without")
    args = parser.parse_args()
    if not args.snips.is_dir():
        raise SystemExit(f"{args.snips}: no SNIPS folder; pass --snips DIR or set SNIPS_NLU_2017")
    out = args.json or RESULTS / ("snips_slots.json" if args.run else "snips_2017.json")
    intents = sorted(folder.name for folder in args.snips.iterdir()
                     if (folder / f"validate_{folder.name}.json").is_file())
    table: dict[str, dict[str, float]] = {}
    for engine, file in ENGINES.items():
        if (found := engine_f1(args.snips, file, "70", intents)) is not None:
            table[f"{engine} (2017, 70 queries)"] = found
    full = engine_f1(args.snips, "Snips_metrics_full.json", "full", intents)
    if full is not None:
        table["Snips NLU (2017, full ~2,000)"] = full
    candidates = {name: rows for name in CANDIDATES if args.run and (rows := run_rows(args.run, name)) is not None}
    for name, rows in candidates.items():
        table[f"tunewright {name}"] = run_f1(rows, intents)
    differences = slot_f1_differences(candidates)
    print_table(table, intents)
    for name, found in differences.items():
        low, high = found["ci95"]
        print(f"slot F1, finetuned - {name}: {found['difference']:+.3f} "
              f"(95 % paired bootstrap [{low:+.3f}, {high:+.3f}])")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"intents": intents, "run": str(args.run) if args.run else None, "table": table,
                               "slot_f1_differences": differences}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    if args.run is None:
        print("(no --run: tunewright rows left out)", file=sys.stderr)


def print_table(table: dict[str, dict[str, float]], intents: list[str]) -> None:
    columns = [*intents, "all"]
    print(f"{'slot F1 (micro, exact value)':<36}" + "".join(f"{c[:12]:>13}" for c in columns) + f"{'intent acc':>12}")
    for name, scores in table.items():
        accuracy = f"{scores['intent_accuracy']:>12.1%}" if "intent_accuracy" in scores else f"{'':>12}"
        print(f"{name:<36}" + "".join(f"{scores.get(c, float('nan')):>13.3f}" for c in columns) + accuracy)


if __name__ == "__main__":
    main()
