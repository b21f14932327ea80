"""Baseline replies reused across runs: an identical rerun reads every prompting baseline's replies
(and the base model's probe answers) from the cache without loading the model, with the same
predictions; any changed input (a test row, the system prompt, the token budget, the constraint, one
byte of the model) misses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunewright.config import load_config
from tunewright.evaluate import evaluate_baselines
from tunewright.evaluate.candidates import zero_shot_chats
from tunewright.evaluate.reply_cache import cached_replies, reply_key
from tunewright.evaluate.task_decoding import label_constraint
from tunewright.modeling import load_tokenizer
from tunewright.pipeline import prepare_run
from tunewright.runs import RunPaths, read_json
from tunewright.timing import recording

PROMPTING = ["zero_shot", "few_shot", "retrieved_few_shot"]


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNEWRIGHT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_an_identical_rerun_reuses_every_baseline_reply(tiny_project: Path, tmp_path: Path, cache: Path) -> None:
    config = load_config(tiny_project)
    first, second = RunPaths(tmp_path / "first"), RunPaths(tmp_path / "second")
    for run in (first, second):
        prepare_run(config, run, announce=lambda message: None)
    stages: list[dict[str, float]] = [{}, {}]
    for run, seconds in zip((first, second), stages, strict=True):
        with recording(seconds):
            evaluate_baselines(config, run, show_progress=False)
    assert read_json(first.eval_dir / "reused_replies.json") == []
    assert read_json(second.eval_dir / "reused_replies.json") == [*PROMPTING, "forgetting_probe"]
    loads = [[name for name in seconds if name.endswith("load_model")] for seconds in stages]
    assert loads[0] == ["zero_shot/load_model"] and loads[1] == []  # the rerun had nothing to decode
    for name in PROMPTING:
        assert first.predictions(name).read_text() == second.predictions(name).read_text()
    assert read_json(first.eval_dir / "probe_general_base.json") == read_json(second.eval_dir /
                                                                              "probe_general_base.json")


def test_a_changed_test_row_is_decoded_again(tiny_project: Path, tmp_path: Path, cache: Path) -> None:
    config = load_config(tiny_project)
    first, second = RunPaths(tmp_path / "first"), RunPaths(tmp_path / "second")
    for run in (first, second):
        prepare_run(config, run, announce=lambda message: None)
    rows = second.split_file("test").read_text().splitlines()
    row = json.loads(rows[0])
    row["messages"][-2]["content"] += " (one more word)"
    second.split_file("test").write_text("\n".join([json.dumps(row), *rows[1:]]) + "\n")
    evaluate_baselines(config, first, show_progress=False)
    evaluate_baselines(config, second, show_progress=False)
    assert read_json(second.eval_dir / "reused_replies.json") == ["forgetting_probe"]  # its prompts are unchanged


def test_every_input_of_the_key_changes_it(tiny_project: Path, tmp_path: Path, cache: Path) -> None:
    config = load_config(tiny_project)
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, announce=lambda message: None)
    model_dir = Path(config.model.base)
    tokenizer = load_tokenizer(model_dir)
    test, train = run.load_split("test"), run.load_split("train")
    chats = zero_shot_chats(test, config.task.system_prompt)
    constraint = label_constraint(config, tokenizer, train)
    base = reply_key(model_dir, tokenizer, chats, 8, 8, constraint)
    assert reply_key(model_dir, tokenizer, chats, 8, 8, constraint) == base
    narrower = label_constraint(load_config(tiny_project, ["task.labels=[Fraud Report, Account Access, "
                                                           "Transaction Dispute, General Inquiry, Other]"]),
                                tokenizer, train)
    copy = tmp_path / "model-copy"
    shutil.copytree(model_dir, copy)
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of the last weight
    weights.write_bytes(bytes(data))
    changed = [
        reply_key(model_dir, tokenizer, zero_shot_chats(test, config.task.system_prompt + " "), 8, 8, constraint),
        reply_key(model_dir, tokenizer, zero_shot_chats(test[1:], config.task.system_prompt), 8, 8, constraint),
        reply_key(model_dir, tokenizer, chats, 9, 8, constraint),
        reply_key(model_dir, tokenizer, chats, 8, 4, constraint),
        reply_key(model_dir, tokenizer, chats, 8, 8, None),
        reply_key(model_dir, tokenizer, chats, 8, 8, narrower),
        reply_key(copy, tokenizer, chats, 8, 8, constraint),
        reply_key(model_dir, tokenizer, chats, 8, 8, constraint, {"type": "object"}),
        reply_key(model_dir, tokenizer, chats, 8, 8, constraint, {"type": "object", "required": ["a"]}),
        reply_key(model_dir, tokenizer, chats, 8, 8, constraint, {"type": "object"}, copied=["a"]),
        reply_key(model_dir, tokenizer, chats, 8, 8, constraint, {"type": "object"}, copied=["a", "b"]),
    ]
    assert len({base, *changed}) == 1 + len(changed)
    produced = []
    assert cached_replies(base, lambda: produced.append(1) or ["a"]) == (["a"], False)
    assert cached_replies(base, lambda: produced.append(1) or ["b"]) == (["a"], True)
    assert cached_replies(changed[0], lambda: produced.append(1) or ["c"]) == (["c"], False)
    assert len(produced) == 2
