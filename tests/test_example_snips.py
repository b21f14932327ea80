"""The SNIPS example on the real shared data (skipped where it is absent): prepare.py draws 70 queries
per intent reproducibly, its answers validate against the schema it writes, the shipped file with
invalid UTF-8 is reported by `data check` with its line, and prepare repairs exactly that."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

import pytest

from tunewright.config import load_config
from tunewright.data.check import check_dataset
from tunewright.data.readers import read_rows

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "snips-slots"
SNIPS = Path(os.environ.get("SNIPS_NLU_2017", REPO.parent / "shared" / "datasets" / "snips-nlu-2017"))
pytestmark = pytest.mark.skipif(not SNIPS.is_dir(), reason="the shared SNIPS folder is not here")


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prepare_draws_70_per_intent_that_validate_against_its_schema(tmp_path: Path) -> None:
    prepare = load("prepare")
    counts = prepare.prepare(SNIPS, tmp_path / "a", 70, full=False)
    assert (counts["train"], counts["test"], counts["intents"]) == (350, 500, 5)
    prepare.prepare(SNIPS, tmp_path / "b", 70, full=False)
    assert (tmp_path / "a" / "data.jsonl").read_bytes() == (tmp_path / "b" / "data.jsonl").read_bytes()
    assert {"LICENSE", "CITATION.md", "schema.json"} <= {p.name for p in (tmp_path / "a").iterdir()}
    config_file = tmp_path / "a" / "tunewright.yaml"
    config_file.write_text((EXAMPLE / "tunewright.yaml").read_text().replace("data/", ""), encoding="utf-8")
    config = load_config(config_file)
    for path in (config.data.path, config.data.test_path):
        assert path is not None
        report = check_dataset(path, config.task)
        assert not report.errors and not [f for f in report.findings if f.code == "invented-span"]


def test_the_invalid_utf8_file_is_reported_with_its_line_and_repaired_on_purpose(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = SNIPS / "PlayMusic" / "train_PlayMusic_full.json"
    bad = [f for f in read_rows(shipped)[1] if f.code == "bad-utf8"]
    assert [f.source for f in bad] == [f"{shipped}:9091"]
    queries = load("prepare").read_pool(shipped)
    assert f"{shipped}:9091: repaired invalid UTF-8 ed a0 bc ed bd 95" in capsys.readouterr().out
    assert any(piece["text"] == "Pop Punk Perfection \U0001f355" for query in queries for piece in query)
    assert len(queries) == len(json.loads(shipped.read_bytes().decode("utf-8", "replace"))["PlayMusic"])


def test_compare_scores_a_run_by_slot_pairs_with_a_paired_interval(tmp_path: Path) -> None:
    compare = load("compare_2017")
    gold = [{"intent": "GetWeather", "slots": {"city": "Paris", "timeRange": "now"}},
            {"intent": "RateBook", "slots": {"rating_value": "5"}}]
    answers = {"finetuned": [gold[0], {"intent": "RateBook", "slots": {"rating_value": "4"}}],
               "zero_shot": [{"intent": "RateBook", "slots": {"city": "Paris"}}, "not json"]}
    (tmp_path / "eval").mkdir()
    for name, outputs in answers.items():
        rows = [{"example_id": f"t{i}", "reference": json.dumps(g),
                 "output": o if isinstance(o, str) else json.dumps(o)}
                for i, (g, o) in enumerate(zip(gold, outputs, strict=True))]
        (tmp_path / "eval" / f"predictions-{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tuned = compare.run_rows(tmp_path, "finetuned")
    base = compare.run_rows(tmp_path, "zero_shot")
    # finetuned: 2 of 3 gold pairs, 1 wrong value -> tp 2, fp 1, fn 1; zero_shot: tp 1, fp 0, fn 2
    assert compare.run_f1(tuned, ["GetWeather", "RateBook"])["all"] == pytest.approx(4 / 6)
    scores = compare.run_f1(base, ["GetWeather", "RateBook"])
    assert scores["all"] == pytest.approx(2 / 4)
    assert scores["intent_accuracy"] == 0 and scores["valid_json"] == 0.5
    found = compare.slot_f1_differences({"finetuned": tuned, "zero_shot": base})["zero_shot"]
    assert found["difference"] == pytest.approx(4 / 6 - 2 / 4)
    low, high = found["ci95"]
    assert low <= found["difference"] <= high
