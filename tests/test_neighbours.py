"""task.neighbours (retrieval-augmented prompts): a training row never sees itself or its near-duplicates,
every prompt's neighbours come from the training split only, and evaluation and serving build the same
prompt for the same input. Asserted on the prompts themselves, with the packaged MiniLM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tunewright.chat import prompt_ids, with_system_prompt
from tunewright.config import load_config
from tunewright.data.duplicates import input_clusters
from tunewright.errors import ConfigError, ModelError
from tunewright.evaluate.task_decoding import finetuned_prompts
from tunewright.library import AdapterLibrary, base_fingerprint, read_adapter_dir
from tunewright.merge import mergeable_adapter
from tunewright.modeling import load_tokenizer
from tunewright.pipeline import prepare_run
from tunewright.records import Example, Message
from tunewright.retrieval import Neighbours, input_text, packaged_embedder
from tunewright.runs import NEIGHBOUR_POOL, AdapterManifest, RunPaths, read_jsonl
from tunewright.serve.engine import Engine
from tunewright.train import train_run
from tunewright.train.recipe import prompted_splits

SHOWN = re.compile(r'^- (".*"): (.*)$')


def shown_inputs(example: Example) -> list[str]:
    """The inputs a prompt shows as neighbours, parsed back out of its last user turn."""
    turn = [m.content for m in example.messages if m.role == "user"][-1]
    return [json.loads(match.group(1)) for line in turn.splitlines() if (match := SHOWN.match(line))]


def example(row: int, text: str, label: str) -> Example:
    return Example(f"row-{row}", (Message("user", text), Message("assistant", label)), label=label)


def test_a_training_row_never_sees_itself_or_its_near_duplicates() -> None:
    texts = ["my card was stolen at the station", "my card was stolen at the station yesterday",
             "my card was stolen at the train station", "how do I reset my online banking password",
             "I forgot my password for the app", "someone took money from my account", "what is my card limit",
             "can I raise my daily card limit", "my transfer has not arrived yet", "where is my money transfer"]
    pool = [example(i, text, f"label {i % 4}") for i, text in enumerate(texts)]
    clusters = input_clusters(pool).cluster
    assert clusters[0] == clusters[1] == clusters[2]  # the three stolen-card rows are near-duplicates
    prompts = Neighbours(pool, 3, packaged_embedder()).show_pool(clusters)
    for row, prompt in enumerate(prompts):
        shown = shown_inputs(prompt)
        assert len(shown) == 3
        barred = {texts[j] for j in range(len(texts)) if clusters[j] == clusters[row]}
        assert texts[row] in barred and not barred & set(shown), (texts[row], shown)
        assert prompt.messages[-1] == pool[row].messages[-1]  # the answer to learn is unchanged
        assert prompt.messages[0].content.endswith("\n\nMessage: " + texts[row])


def test_the_config_refuses_neighbours_without_labels(tiny_project: Path) -> None:
    with pytest.raises(ConfigError, match=r"task\.neighbours"):
        load_config(tiny_project, ["task.labels=[]", "task.label_regex=null", "task.neighbours=3"])


def test_neighbours_come_from_the_training_split_and_serving_builds_the_evaluation_prompt(
        tiny_project: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    config = load_config(tiny_project, ["task.neighbours=2"])
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, lambda _: None)
    train, val, test = run.load_split("train"), run.load_split("val"), run.load_split("test")
    train_inputs = {input_text(e) for e in train}
    prompted_train, prompted_val = prompted_splits(config, train, val)
    prompted_test = finetuned_prompts(config, train)(test)
    for prompt in [*prompted_train, *prompted_val, *prompted_test]:
        shown = shown_inputs(prompt)
        assert len(shown) == 2 and set(shown) <= train_inputs
    for original, prompt in zip(train, prompted_train, strict=True):
        assert input_text(original) not in shown_inputs(prompt)

    train_run(config, run, show_progress=False)
    manifest = AdapterManifest.read(run.adapter)
    assert manifest.neighbours == 2
    assert [row["input"] for row in read_jsonl(run.adapter / NEIGHBOUR_POOL)] == [input_text(e) for e in train]
    with pytest.raises(ModelError, match=r"task\.neighbours"):
        mergeable_adapter(run)  # a merged model would be asked without the retrieved examples

    library = AdapterLibrary(tmp_path / "library")
    library.add(run.root, "nb", base_fingerprint(tiny_model_dir))
    engine = Engine("base", tiny_model_dir, library)
    tokenizer = load_tokenizer(run.adapter)
    for original, prompt in zip(test[:3], prompted_test[:3], strict=True):
        served = engine.prompt("nb", list(original.prompt), 8)
        assert served.prompt_ids == prompt_ids(tokenizer, with_system_prompt(prompt.prompt, config.task.system_prompt))


def test_an_adapter_without_its_pool_is_refused(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    (tmp_path / "tunewright-adapter.json").write_text(json.dumps({"neighbours": 3}))
    with pytest.raises(ModelError, match=NEIGHBOUR_POOL):
        read_adapter_dir(tmp_path, "nb")

