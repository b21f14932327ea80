"""Prepare the Banking77 example: 10 training examples per intent (770 rows, chosen with a fixed seed)
from the official train file, and the full official test file (3,080 rows), as tunewright JSONL.

Usage: python examples/banking77/prepare.py [BANKING77_DIR] [--out DIR] [--per-intent 10]
BANKING77_DIR holds train.csv, test.csv, categories.json, LICENSE (default ../shared/datasets/banking77
from the repository root, i.e. /work/shared/datasets/banking77 in this checkout's layout).
Data: Casanueva et al. 2020, CC-BY-4.0; LICENSE and CITATION.md are copied next to the output.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[1].parent / "shared" / "datasets" / "banking77"
SEED = 77
CITATION = """# Banking77 citation

The Banking77 data set is by Iñigo Casanueva, Tadas Temčinas, Daniela Gerz, Matthew Henderson and
Ivan Vulić (PolyAI), released under CC-BY-4.0 (see LICENSE in this folder). Cite:

    @inproceedings{Casanueva2020,
        author    = {I{\\~{n}}igo Casanueva and Tadas Tem{\\v{c}}inas and Daniela Gerz and
                     Matthew Henderson and Ivan Vuli{\\'{c}}},
        title     = {Efficient Intent Detection with Dual Sentence Encoders},
        year      = {2020},
        booktitle = {Proceedings of the 2nd Workshop on NLP for ConvAI - ACL 2020},
        url       = {https://arxiv.org/abs/2003.04807},
    }

tunewright's files made from it: data.jsonl (10 rows per intent from train.csv, seed 77) and
test.jsonl (all of test.csv); labels are the category names with '_' written as ' '.
"""


def label_text(category: str) -> str:
    """'card_arrival' -> 'card arrival': words the base model already knows."""
    return category.replace("_", " ")


def read_rows(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [(row["text"].strip(), row["category"].strip()) for row in csv.DictReader(handle)]


def row_json(text: str, category: str, row_id: str) -> str:
    label = label_text(category)
    return json.dumps({"id": row_id, "prompt": text, "completion": label, "label": label}, ensure_ascii=False)


def prepare(source: Path, out: Path, per_intent: int) -> tuple[int, int]:
    for name in ("train.csv", "test.csv", "categories.json", "LICENSE"):
        if not (source / name).is_file():
            raise SystemExit(f"{source / name}: not found; pass the Banking77 folder as the first argument")
    categories = json.loads((source / "categories.json").read_text(encoding="utf-8"))
    by_category: dict[str, list[str]] = {category: [] for category in categories}
    for text, category in read_rows(source / "train.csv"):
        if text not in by_category[category]:
            by_category[category].append(text)
    rng = random.Random(SEED)
    train_lines = []
    for category in categories:
        for index, text in enumerate(rng.sample(by_category[category], per_intent)):
            train_lines.append(row_json(text, category, f"train-{category}-{index}"))
    test_lines = [row_json(text, category, f"test-{index}")
                  for index, (text, category) in enumerate(read_rows(source / "test.csv"))]
    out.mkdir(parents=True, exist_ok=True)
    (out / "data.jsonl").write_text("\n".join(train_lines) + "\n", encoding="utf-8")
    (out / "test.jsonl").write_text("\n".join(test_lines) + "\n", encoding="utf-8")
    shutil.copyfile(source / "LICENSE", out / "LICENSE")
    (out / "CITATION.md").write_text(CITATION, encoding="utf-8")
    return len(train_lines), len(test_lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--per-intent", type=int, default=10)
    args = parser.parse_args(argv)
    train, test = prepare(args.source, args.out, args.per_intent)
    print(f"wrote {train} training rows and {test} test rows to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
