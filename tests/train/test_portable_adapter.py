"""A trained adapter names its base by public id, so a copy of its directory loads elsewhere with
stock peft (`AutoPeftModelForCausalLM`) on the model that id finds, and tunewright resolves the same id
through the local Hugging Face cache (never downloading)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import peft.utils.save_and_load
import pytest
import torch

from tunewright.config import load_config
from tunewright.methods import load_trained
from tunewright.modeling import PACKAGED_MODEL, PACKAGED_MODEL_ID, public_model_id, resolve_base_model
from tunewright.pipeline import prepare_run
from tunewright.runs import RunPaths
from tunewright.train import train_run

MODEL_ID = "tunewright-tests/tiny-llama"
IDS = [[1, 5, 9, 14, 3, 7]]
STOCK_PEFT = """
import json, sys, torch
from peft import AutoPeftModelForCausalLM
model = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
with torch.no_grad():
    print(json.dumps(model(input_ids=torch.tensor(json.loads(sys.argv[2]))).logits.tolist()))
"""


def _hub_cache(root: Path, model_dir: Path) -> Path:
    """A Hugging Face cache holding the tiny model under MODEL_ID, laid out as the Hub client leaves it."""
    repo = root / ("models--" + MODEL_ID.replace("/", "--"))
    commit = "0" * 40
    shutil.copytree(model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return root


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"saving an adapter asked the Hub: {args}")


def test_copied_adapter_loads_with_stock_peft_from_the_recorded_id(
        make_project: object, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = _hub_cache(tmp_path / "hub", tiny_model_dir)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(peft.utils.save_and_load, "check_file_exists_on_hf_hub", _no_network)
    (tmp_path / "project").mkdir()
    project = make_project(tmp_path / "project", 40)  # type: ignore[operator]
    config = load_config(project, [f"model.base={MODEL_ID}", "training.max_steps=2", "training.eval_every=1"])
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, announce=lambda message: None)
    train_run(config, run, show_progress=False)
    assert json.loads((run.adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == MODEL_ID

    copied = tmp_path / "elsewhere" / "adapter"
    shutil.copytree(run.adapter, copied)
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}
    stock = subprocess.run([sys.executable, "-c", STOCK_PEFT, str(copied), json.dumps(IDS)], env=env,
                           capture_output=True, text=True, check=True, timeout=300)
    ours = load_trained(resolve_base_model(MODEL_ID), copied, "lora")
    with torch.no_grad():
        expected = ours(input_ids=torch.tensor(IDS)).logits
    assert torch.allclose(torch.tensor(json.loads(stock.stdout)), expected, atol=1e-5)


def test_the_packaged_model_is_recorded_by_its_hub_id() -> None:
    assert public_model_id(PACKAGED_MODEL) == PACKAGED_MODEL_ID
    assert public_model_id("/data/models/mine") == "/data/models/mine"  # the user's own value
