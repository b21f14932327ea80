"""GGUF export read back (tensor names, shapes, tokenizer metadata, and the same logits once transformers
loads it), and the vLLM launch line for an adapter library with warnings for adapters vLLM refuses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import IA3Config, LoraConfig, get_peft_model

from tunewright.config import Config, load_config
from tunewright.export import export_gguf, export_vllm
from tunewright.library import AdapterLibrary, base_fingerprint
from tunewright.merge import merge_adapter
from tunewright.modeling import load_model, load_tokenizer
from tunewright.pipeline import prepare_run
from tunewright.runs import ADAPTER_MANIFEST, RunPaths


def save_adapter(base: Path, peft_config: object, out: Path) -> Path:
    torch.manual_seed(0)
    get_peft_model(load_model(base), peft_config).save_pretrained(out, safe_serialization=True)  # type: ignore[arg-type]
    load_tokenizer(base).save_pretrained(out)
    (out / ADAPTER_MANIFEST).write_text(json.dumps({"base_model": str(base), "method": "lora", "task": "t"}))
    return out


@pytest.fixture(scope="module")
def lora_run(make_project: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, RunPaths]:
    root = tmp_path_factory.mktemp("export")
    config = load_config(make_project(root, 120))  # type: ignore[operator]
    run = RunPaths(root / "run")
    prepare_run(config, run, announce=lambda message: None)
    save_adapter(Path(config.model.base), LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False),
                 run.adapter)
    return config, run


def test_gguf_reads_back_with_names_shapes_tokenizer_and_logits(lora_run: tuple[Config, RunPaths],
                                                                 tmp_path: Path) -> None:
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config, run = lora_run
    out = export_gguf(config, run, tmp_path / "model.gguf", half=False)
    reader = gguf.GGUFReader(out)
    shapes = {tensor.name: tuple(int(n) for n in tensor.shape) for tensor in reader.tensors}
    hidden = load_model(Path(config.model.base)).config.hidden_size
    tokenizer = load_tokenizer(run.adapter)
    assert shapes["token_embd.weight"] == (hidden, len(tokenizer))  # GGUF lists dimensions innermost first
    assert {"blk.0.attn_q.weight", "blk.1.ffn_down.weight", "output_norm.weight"} <= shapes.keys()
    fields = reader.fields
    tokens = fields["tokenizer.ggml.tokens"]
    assert len(tokens.data) == len(tokenizer)
    assert fields["tokenizer.ggml.eos_token_id"].parts[-1][0] == tokenizer.eos_token_id
    assert bytes(fields["tokenizer.chat_template"].parts[-1]).decode() == tokenizer.chat_template
    assert bytes(fields["general.architecture"].parts[-1]).decode() == "llama"
    # transformers reads GGUF too: the file must hold the merged model, q/k permutation included
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=out.name, dtype=torch.float32)
    merged = load_model(merge_adapter(config, run, tmp_path / "merged").path)
    ids = torch.tensor([[3, 7, 11, 13, 17]])
    with torch.inference_mode():
        assert torch.allclose(loaded(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)
    gguf_tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file=out.name)
    assert gguf_tokenizer("I cannot log in")["input_ids"] == tokenizer("I cannot log in")["input_ids"]


def test_gguf_default_is_f16(lora_run: tuple[Config, RunPaths], tmp_path: Path) -> None:
    import gguf

    reader = gguf.GGUFReader(export_gguf(*lora_run, tmp_path / "model.gguf"))
    types = {tensor.name: tensor.tensor_type for tensor in reader.tensors}
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.F16
    assert types["output_norm.weight"] == gguf.GGMLQuantizationType.F32


def test_vllm_line_for_a_library(tiny_model_dir: Path, tmp_path: Path) -> None:
    library = AdapterLibrary(tmp_path / "library")
    fingerprint = base_fingerprint(tiny_model_dir)
    adapters = {
        "small": LoraConfig(r=8, target_modules=["q_proj", "v_proj"]),
        "big": LoraConfig(r=24, target_modules="all-linear"),
        "dora": LoraConfig(r=8, target_modules="all-linear", use_dora=True),
        "ia3": IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"]),
        "head": LoraConfig(r=8, target_modules=["q_proj"], modules_to_save=["lm_head"]),
    }
    for name, peft_config in adapters.items():
        library.add(save_adapter(tiny_model_dir, peft_config, tmp_path / name), name, fingerprint)
    plan = export_vllm(library.root, tmp_path / "vllm.json")
    assert plan.served == ["big", "small"] and plan.max_lora_rank == 32
    assert plan.command.startswith(f"vllm serve {tiny_model_dir} --enable-lora --max-lora-rank 32 --max-loras 2")
    assert f"small={library.root / 'small'}" in plan.command
    assert sorted(w.split("'")[1] for w in plan.warnings) == ["dora", "head", "ia3"]
    saved = json.loads((tmp_path / "vllm.json").read_text())
    assert [m["name"] for m in saved["lora_modules"]] == ["big", "small"] and saved["command"] == plan.command
    shutil.rmtree(library.root / "big")
    assert export_vllm(library.root, tmp_path / "vllm2.json").max_lora_rank == 8
