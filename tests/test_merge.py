"""Merging gives a standalone model with the adapter's logits, for LoRA, DoRA, IA3 and QLoRA (merged into
a 32-bit base), whose chat template defaults to the task's system prompt so stock transformers answers a
user-only request as tunewright does; prompt and prefix tuning refuse with one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model

from tunewright.chat import prompt_ids, with_system_prompt
from tunewright.config import Config, load_config
from tunewright.errors import EXIT_PROBLEMS, ModelError
from tunewright.export.verify import compare, merged_answers, reference_answers
from tunewright.merge import MERGE_MANIFEST, MODEL_CARD, merge_adapter
from tunewright.modeling import load_model, load_tokenizer, load_with_adapter
from tunewright.pipeline import prepare_run
from tunewright.records import Message
from tunewright.runs import ADAPTER_MANIFEST, RunPaths

PEFT_CONFIGS = {
    "lora": LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False),
    "dora": LoraConfig(r=4, target_modules="all-linear", use_dora=True, init_lora_weights=False),
    "qlora": LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    "ia3": IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"],
                     init_ia3_weights=False),
    "prompt_tuning": PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
    "prefix_tuning": PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
}


@pytest.fixture(scope="module")
def prepared(make_project: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    root = tmp_path_factory.mktemp("merge")
    config = load_config(make_project(root, 120))  # type: ignore[operator]
    run = RunPaths(root / "prepared")
    prepare_run(config, run, announce=lambda message: None)
    return config, run.root


def run_with_adapter(prepared: tuple[Config, Path], method: str, tmp_path: Path) -> RunPaths:
    """A prepared run whose adapter/ is a `method` adapter built with peft on the tiny model."""
    config, source = prepared
    run = RunPaths(tmp_path / method)
    shutil.copytree(source, run.root)
    torch.manual_seed(0)
    model = get_peft_model(load_model(Path(config.model.base)), PEFT_CONFIGS[method])
    model.save_pretrained(run.adapter, safe_serialization=True)
    load_tokenizer(Path(config.model.base)).save_pretrained(run.adapter)
    (run.adapter / ADAPTER_MANIFEST).write_text(json.dumps({"base_model": config.model.base, "method": method}))
    return run


@pytest.mark.lowest
@pytest.mark.parametrize("method", ["lora", "dora", "qlora", "ia3"])
def test_merged_model_matches_adapter(method: str, prepared: tuple[Config, Path], tmp_path: Path) -> None:
    config = prepared[0]
    run = run_with_adapter(prepared, method, tmp_path)
    result = merge_adapter(config, run, tmp_path / "merged")
    assert result.max_abs_diff < 1e-3 and result.method == method
    merged = load_model(result.path)
    assert all(p.dtype == torch.float32 for p in merged.parameters())  # never 4-bit, also for qlora
    assert load_tokenizer(result.path).chat_template
    assert list(result.path.glob("*.safetensors")) and not list(result.path.glob("*.bin"))
    assert merged.generation_config.eos_token_id and (result.path / "generation_config.json").is_file()
    assert json.loads((result.path / MERGE_MANIFEST).read_text())["method"] == method
    ids = torch.tensor([[3, 7, 11, 13, 17]])
    adapter_model = load_with_adapter(Path(config.model.base), run.adapter)
    base_logits = load_model(Path(config.model.base))(input_ids=ids).logits
    with torch.inference_mode():
        expected = adapter_model(input_ids=ids).logits
        assert torch.allclose(merged(input_ids=ids).logits, expected, atol=1e-4)
        assert not torch.allclose(base_logits, expected, atol=1e-4)  # the adapter did change something


@pytest.mark.parametrize("method", ["prompt_tuning", "prefix_tuning"])
def test_prompt_and_prefix_tuning_refuse(method: str, prepared: tuple[Config, Path], tmp_path: Path) -> None:
    run = run_with_adapter(prepared, method, tmp_path)
    with pytest.raises(ModelError, match="nothing to merge"):
        merge_adapter(prepared[0], run, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_the_task_travels_with_the_merged_model(prepared: tuple[Config, Path], tmp_path: Path) -> None:
    """Stock transformers on the merged folder, sent only the user's message, answers as tunewright does."""
    from transformers import AutoTokenizer

    config = prepared[0]
    run = run_with_adapter(prepared, "lora", tmp_path)
    merged = merge_adapter(config, run, tmp_path / "merged").path
    stock = AutoTokenizer.from_pretrained(merged)
    user_only = [{"role": "user", "content": "My card was charged twice"}]
    expected = prompt_ids(load_tokenizer(run.adapter), with_system_prompt([Message("user", user_only[0]["content"])],
                                                                          config.task.system_prompt))
    assert prompt_ids(stock, user_only) == expected  # the template's default system prompt is the task's
    own_system = [{"role": "system", "content": "Be brief."}, *user_only]
    assert prompt_ids(stock, own_system) == prompt_ids(load_tokenizer(run.adapter), own_system)

    reference = reference_answers(config, run, 4)
    assert all(chat[0]["role"] == "user" for chat in reference.chats)
    runtime, answers = merged_answers(merged, reference.chats, config.eval.max_new_tokens)
    parity = compare("merged", runtime, "f32", reference, answers)
    assert (parity.identical, parity.total) == (4, 4) and parity.ok, parity.differences
    assert parity.same_as_base < 4  # the adapter answers, not the base

    card = (merged / MODEL_CARD).read_text()
    assert config.task.system_prompt.split()[0] in card and "lora" in card and "<|im_end|>" in card
    assert "AutoModelForCausalLM" in card and config.task.name in card


def test_a_silent_adapter_fails_verification(prepared: tuple[Config, Path], tmp_path: Path) -> None:
    config = prepared[0]
    run = RunPaths(tmp_path / "silent")
    shutil.copytree(prepared[1], run.root)
    get_peft_model(load_model(Path(config.model.base)), LoraConfig(r=4, target_modules="all-linear")).save_pretrained(
        run.adapter, safe_serialization=True)  # peft's default init: B = 0, the adapter changes nothing
    load_tokenizer(Path(config.model.base)).save_pretrained(run.adapter)
    (run.adapter / ADAPTER_MANIFEST).write_text(json.dumps({"base_model": config.model.base, "method": "lora"}))
    merged = merge_adapter(config, run, tmp_path / "merged").path
    reference = reference_answers(config, run, 3)
    runtime, answers = merged_answers(merged, reference.chats, config.eval.max_new_tokens)
    parity = compare("merged", runtime, "f32", reference, answers)
    assert parity.identical == 3 and parity.adapter_silent and not parity.ok
    assert "had no effect" in parity.problems()[0]
    done = subprocess.run([sys.executable, "-m", "tunewright", "merge", str(run.root), "-o", str(tmp_path / "cli"),
                           "--verify", "--verify-prompts", "3"], capture_output=True, text=True, timeout=600)
    assert done.returncode == EXIT_PROBLEMS and "3/3 answers identical" in done.stdout
    assert "verify failed" in done.stderr and "had no effect" in done.stderr and "Traceback" not in done.stderr
