"""Prepare the SNIPS slot-filling example: 70 training queries per intent drawn with a fixed seed from
each train_<Intent>.json pool (the benchmark's 70-query setting), every validate_<Intent>.json query as
the fixed test file, and the answer schema made from the intents and slot names of the training draw.

Usage: python examples/snips-slots/prepare.py [SNIPS_DIR] [--out DIR] [--per-intent 70] [--full]
SNIPS_DIR holds one folder per intent (default $SNIPS_NLU_2017, else ../shared/datasets/snips-nlu-2017
from the repository root). Any intent folders found are used, so the same command prepares intents this
example never saw.
Data: Coucke et al. 2018, CC0 1.0; LICENSE and CITATION.md are copied next to the output.

Answer shape: {"intent": "<Intent>", "slots": {"<slot name>": "<the words of the query>", ...}} with
the slots in schema (alphabetical) order, the order constrained decoding writes them in. A query that
names one slot twice cannot be written in that shape: such pool queries are left out of the draw
(3 of PlayMusic's 300; none of the validate queries has one).

Invalid UTF-8: PlayMusic/train_PlayMusic_full.json, as shipped upstream, writes one emoji as two encoded
UTF-16 surrogate halves (CESU-8, bytes ED A0 BC ED BD 95 at line 9091, a pizza emoji); `tunewright
data check` on that file reports it as `bad-utf8` at that line. Only --full reads the *_full files; it
repairs exactly that encoding (surrogate halves decoded and rejoined into the character they spell),
printing the file and line of each repair, and refuses any other undecodable byte.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The shared folder beside the checkout (../shared from the repository root), or $SNIPS_NLU_2017.
SHARED_SOURCE = HERE.parents[1].parent / "shared" / "datasets" / "snips-nlu-2017"
DEFAULT_SOURCE = Path(os.environ.get("SNIPS_NLU_2017", SHARED_SOURCE))
SEED = 2017
CITATION = """# SNIPS NLU benchmark citation

The SNIPS 2017 custom-intent-engines benchmark (sonos/nlu-benchmark, folder
2017-06-custom-intent-engines) is released under CC0 1.0 (see LICENSE in this folder). Any publication
based on these data must cite:

    Coucke A. et al., "Snips Voice Platform: an embedded Spoken Language Understanding system for
    private-by-design voice interfaces", 2018, arXiv:1805.10190.

tunewright's files made from it: data.jsonl (70 queries per intent from train_<Intent>.json, seed 2017),
test.jsonl (every validate_<Intent>.json query), schema.json (the answer schema), and with --full
full.jsonl (every train_<Intent>_full.json query).
"""
SURROGATE_PAIR = re.compile(rb"\xed[\xa0-\xaf][\x80-\xbf]\xed[\xb0-\xbf][\x80-\xbf]")


def read_pool(path: Path) -> list[list[dict[str, str]]]:
    """The queries of one SNIPS file, each a list of text pieces (a piece with "entity" is a slot)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = repair_cesu8(path, raw)
    (pieces,) = json.loads(text).values()
    return [query["data"] for query in pieces]


def repair_cesu8(path: Path, raw: bytes) -> str:
    """Rejoin UTF-8-encoded surrogate halves into the character they spell; any other bad byte stops."""
    for match in SURROGATE_PAIR.finditer(raw):
        line = raw.count(b"\n", 0, match.start()) + 1
        character = match.group().decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass").decode("utf-16")
        print(f"{path}:{line}: repaired invalid UTF-8 {match.group().hex(' ')} (surrogate halves) to {character!r}")
    repaired = SURROGATE_PAIR.sub(
        lambda m: m.group().decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass").decode("utf-16")
        .encode("utf-8"), raw)
    try:
        return repaired.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = repaired.count(b"\n", 0, exc.start) + 1
        raise SystemExit(f"{path}:{line}: invalid UTF-8 that is not surrogate halves; fix the file") from None


def answer(intent: str, query: list[dict[str, str]]) -> dict[str, Any] | None:
    slots = [(piece["entity"], piece["text"].strip()) for piece in query if "entity" in piece]
    if len({name for name, _ in slots}) < len(slots):
        return None  # a slot named twice does not fit {name: value}
    return {"intent": intent, "slots": dict(sorted(slots))}


def row_json(intent: str, query: list[dict[str, str]], row_id: str) -> str | None:
    found = answer(intent, query)
    if found is None:
        return None
    text = "".join(piece["text"] for piece in query).strip()
    return json.dumps({"id": row_id, "prompt": text, "completion": json.dumps(found, ensure_ascii=False)},
                      ensure_ascii=False)


def schema_for(intents: list[str], slot_names: set[str]) -> dict[str, Any]:
    """Intent from the set, slots optional, each a string, no other keys."""
    return {
        "type": "object", "additionalProperties": False, "required": ["intent", "slots"],
        "properties": {
            "intent": {"enum": intents},
            "slots": {"type": "object", "additionalProperties": False,
                      "properties": {name: {"type": "string", "minLength": 1} for name in sorted(slot_names)}},
        },
    }


def prepare(source: Path, out: Path, per_intent: int, full: bool) -> dict[str, int]:
    if not source.is_dir():
        raise SystemExit(f"{source}: no SNIPS folder; pass it as SNIPS_DIR or set SNIPS_NLU_2017")
    intents = sorted(folder.name for folder in source.iterdir() if (folder / f"train_{folder.name}.json").is_file())
    if not intents or not (source / "LICENSE").is_file():
        raise SystemExit(f"{source}: no <Intent>/train_<Intent>.json folders or no LICENSE; pass the SNIPS folder")
    rng = random.Random(SEED)
    train, test, names = [], [], set()
    for intent in intents:
        pool = [q for q in read_pool(source / intent / f"train_{intent}.json") if answer(intent, q) is not None]
        for index, query in enumerate(rng.sample(pool, per_intent)):
            train.append(row_json(intent, query, f"train-{intent}-{index}"))
            names.update(piece["entity"] for piece in query if "entity" in piece)
        for index, query in enumerate(read_pool(source / intent / f"validate_{intent}.json")):
            test.append(row_json(intent, query, f"test-{intent}-{index}"))
    out.mkdir(parents=True, exist_ok=True)
    write_lines(out / "data.jsonl", train)
    write_lines(out / "test.jsonl", test)
    (out / "schema.json").write_text(json.dumps(schema_for(intents, names), indent=2) + "\n", encoding="utf-8")
    counts = {"train": len(train), "test": len(test), "intents": len(intents), "slot_names": len(names)}
    if full:
        rows = [row_json(intent, query, f"full-{intent}-{index}") for intent in intents
                for index, query in enumerate(read_pool(source / intent / f"train_{intent}_full.json"))]
        write_lines(out / "full.jsonl", rows)
        counts["full"] = sum(row is not None for row in rows)
    shutil.copyfile(source / "LICENSE", out / "LICENSE")
    (out / "CITATION.md").write_text(CITATION, encoding="utf-8")
    return counts


def write_lines(path: Path, rows: list[str | None]) -> None:
    path.write_text("".join(row + "\n" for row in rows if row is not None), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=HERE / "data")
    parser.add_argument("--per-intent", type=int, default=70)
    parser.add_argument("--full", action="store_true", help="also write full.jsonl from the *_full files")
    args = parser.parse_args()
    counts = prepare(args.source, args.out, args.per_intent, args.full)
    print(f"wrote {args.out}: " + ", ".join(f"{key} {value}" for key, value in counts.items()))


if __name__ == "__main__":
    main()
