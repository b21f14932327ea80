"""The SNIPS example on the real shared data (skipped where it is absent): prepare.py draws 70 queries
per intent reproducibly, its answers validate against the schema it writes, the shipped file with
invalid UTF-8 is reported by `data check` with its line, and prepare repairs exactly that."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from tunewright.config import load_config
from tunewright.data.check import check_dataset
from tunewright.data.readers import read_rows

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "snips-slots"
SNIPS = REPO.parent / "shared" / "datasets" / "snips-nlu-2017"
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
