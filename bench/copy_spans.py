"""What copy-span constrained decoding (copy_spans.py) changes for a trained extraction run: the run's
fine-tuned model answers the same test rows twice in one process, under the output schema alone and
under the schema with every task.copied_fields value a span of its input (eval.constrain_copies), and
the two are scored side by side: slot F1 (micro over (slot, exact value) pairs), exact frame match,
intent accuracy, valid JSON and schema, copied values the input does not contain, wall and CPU
seconds, and the slot F1 difference with a 95 % paired bootstrap interval over the rows. The modes run
in turn, the free one first (it also pays the one-off llguidance tokenizer build, about a second).

    python examples/snips-slots/prepare.py && tunewright train examples/snips-slots/tunewright.yaml --out runs/snips
    OMP_NUM_THREADS=2 .venv/bin/python bench/copy_spans.py --run runs/snips --json bench/results/copy_spans.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tunewright.config import Config, load_config
from tunewright.copy_spans import copy_source, input_spans
from tunewright.evaluate.candidates import zero_shot_chats
from tunewright.evaluate.fields import pair_counts, prf
from tunewright.evaluate.stats import bootstrap_indices, paired_difference
from tunewright.evaluate.task_decoding import finetuned_prompts, generate_answers, load_finetuned
from tunewright.records import Example
from tunewright.runs import existing_run
from tunewright.schema import Field, answer_fields, copied_values, parse_answer

MODES = {"schema only": False, "schema + copy spans": True}
SLOT_PREFIX = "slots."
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 2000, 0


def spread(rows: list[Example], count: int | None) -> list[Example]:
    """`count` rows evenly spaced over the test split (it is ordered by intent), or all of them."""
    if count is None or count >= len(rows):
        return rows
    step = len(rows) / count
    return [rows[int(index * step)] for index in range(count)]


def with_copies(config: Config, constrained: bool) -> Config:
    return config.model_copy(update={"eval": config.eval.model_copy(update={"constrain_copies": constrained})})


def row_facts(config: Config, example: Example, reply: str) -> dict[str, Any]:
    """One answer scored against its reference: slot pair counts, frame, intent, validity, invented copies."""
    schema = config.task.output_schema
    assert schema is not None
    answer, gold = parse_answer(reply.strip(), schema), parse_answer(example.reference.strip(), schema)
    predicted: Counter[Field] = answer_fields(answer.value) if answer.valid_json else Counter()
    expected = answer_fields(gold.value)
    counts = pair_counts(slot_pairs(expected), slot_pairs(predicted))
    spans = set(input_spans(source(example)))
    invented = [value for _, value in copied_values(answer.value, config.task.copied_fields) if value not in spans] \
        if answer.valid_json else []
    intent = answer.value.get("intent") if isinstance(answer.value, dict) else None
    return {"tp": counts.true_pos, "fp": counts.false_pos, "fn": counts.false_neg,
            "frame": answer.valid_json and predicted == expected,
            "intent": intent is not None and intent == (gold.value or {}).get("intent"),
            "json": answer.valid_json, "schema": answer.valid_schema, "invented": len(invented)}


def source(example: Example) -> str:
    """The text copied values come from, as evaluation takes it (copy_spans.copy_source)."""
    return copy_source((message.role, message.content) for message in example.prompt)


def slot_pairs(fields: Counter[Field]) -> Counter[Field]:
    return Counter({pair: n for pair, n in fields.items() if pair[0].startswith(SLOT_PREFIX)})


def slot_f1(facts: list[dict[str, Any]], indices: Any) -> float:
    return prf(*(sum(facts[i][key] for i in indices) for key in ("tp", "fp", "fn")))["f1"]


def summary(facts: list[dict[str, Any]], wall_s: float, cpu_s: float) -> dict[str, float]:
    rows = len(facts)
    return {"slot_f1": slot_f1(facts, range(rows)),
            "exact_frame": sum(f["frame"] for f in facts) / rows,
            "intent_accuracy": sum(f["intent"] for f in facts) / rows,
            "valid_json": sum(f["json"] for f in facts) / rows,
            "valid_schema": sum(f["schema"] for f in facts) / rows,
            "invented_values": sum(f["invented"] for f in facts),
            "wall_s": wall_s, "cpu_s": cpu_s}


def print_table(results: dict[str, dict[str, float]], rows: int) -> None:
    columns = ["slot_f1", "exact_frame", "intent_accuracy", "valid_json", "valid_schema", "invented_values",
               "wall_s", "cpu_s"]
    print(f"{rows} test rows")
    print(f"{'mode':<22}" + "".join(f"{name:>16}" for name in columns))
    for mode, scores in results.items():
        cells = [f"{scores[name]:.0f}" if name == "invented_values" else f"{scores[name]:.1f}" if name.endswith("_s")
                 else f"{100 * scores[name]:.1f} %" for name in columns]
        print(f"{mode:<22}" + "".join(f"{cell:>16}" for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained run directory (tunewright train --out)")
    parser.add_argument("--rows", type=int, default=None, help="test rows, spread over the split (default: all)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    run = existing_run(args.run)
    config = load_config(run.config)
    if config.task.output_schema is None or not config.task.copied_fields:
        sys.exit(f"{args.run}: the task has no output_schema with copied_fields; nothing to constrain")
    test = spread(run.load_split("test"), args.rows)
    model, tokenizer = load_finetuned(config, run)
    chats = zero_shot_chats(finetuned_prompts(config, run.load_split("train"))(test), config.task.system_prompt)
    results, facts, replies = {}, {}, {}
    for mode, constrained in MODES.items():
        settings = with_copies(config, constrained)
        start, cpu = time.perf_counter(), time.process_time()
        replies[mode] = generate_answers(settings, model, tokenizer, chats, mode, sys.stderr.isatty())
        wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        facts[mode] = [row_facts(config, example, reply) for example, reply in zip(test, replies[mode], strict=True)]
        results[mode] = summary(facts[mode], wall_s, cpu_s)
    free, copies = (facts[mode] for mode in MODES)
    samples = bootstrap_indices(len(test), BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)
    difference = paired_difference("slot_f1", "schema + copy spans", "schema only", lambda rows: slot_f1(copies, rows),
                                   lambda rows: slot_f1(free, rows), len(test), samples)
    print_table(results, len(test))
    if difference is not None:
        low, high = difference.ci95
        print(f"slot F1, copy spans - schema only: {100 * difference.difference:+.1f} points "
              f"(95 % CI {100 * low:+.1f} to {100 * high:+.1f})")
    if args.json:
        changed = [{"id": example.id, "input": source(example), "reference": example.reference,
                    **{mode: replies[mode][index] for mode in MODES}}
                   for index, example in enumerate(test) if len({replies[mode][index] for mode in MODES}) > 1]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": " ".join(["python", *sys.argv]), "run": str(args.run), "model": config.model.base,
            "rows": len(test), "machine": platform.processor() or platform.machine(), "results": results,
            "slot_f1_difference": difference.to_json() if difference is not None else None,
            "changed_answers": changed}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
