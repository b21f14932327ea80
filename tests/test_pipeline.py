"""The pipeline's evaluation side: a fixed test file (data.test_path) and the summary's evaluation keys."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tunewright.config import load_config
from tunewright.pipeline import prepare_run
from tunewright.runs import RunPaths


def test_fixed_test_file_is_the_test_split_and_every_row_trains_or_validates(tiny_project: Path,
                                                                             tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "fintech-support" / "data.jsonl"
    extra = [json.loads(line) for line in example.read_text(encoding="utf-8").splitlines()[120:140]]
    (tiny_project.parent / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in extra))
    raw = yaml.safe_load(tiny_project.read_text())
    raw["data"]["test_path"] = "test.jsonl"
    tiny_project.write_text(yaml.safe_dump(raw))
    config = load_config(tiny_project)
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, lambda message: None)
    train, val, test = (run.load_split(name) for name in ("train", "val", "test"))
    assert len(train) + len(val) == 120 and len(test) == 20
    assert [e.messages[-1].content for e in test] == [row["output"] for row in extra]
    assert 0.8 < len(train) / 120 < 0.97  # the 0.8 : 0.1 ratio, in expectation
