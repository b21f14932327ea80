"""Export for llama.cpp / Ollama: a run merged into one GGUF file (Llama architecture, written with the
`gguf` package) whose chat template defaults to the task's system prompt, with an Ollama Modelfile and
a model card beside it."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tunewright.card import ModelCard
from tunewright.config import Config
from tunewright.errors import ModelError
from tunewright.export.gguf_tokenizer import add_tokenizer, pre_tokenizer
from tunewright.export.ollama import modelfile
from tunewright.merge import merge_adapter, merged_card
from tunewright.modeling import load_tokenizer
from tunewright.runs import ARTIFACT_MODE, RunPaths, read_json, write_text

# Hugging Face Llama tensor names -> GGUF names (llama.cpp's convention); "{i}" is the layer.
LLAMA_TENSORS = {
    "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "model.layers.{i}.self_attn.q_proj.weight": "blk.{i}.attn_q.weight",
    "model.layers.{i}.self_attn.k_proj.weight": "blk.{i}.attn_k.weight",
    "model.layers.{i}.self_attn.v_proj.weight": "blk.{i}.attn_v.weight",
    "model.layers.{i}.self_attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "model.layers.{i}.mlp.gate_proj.weight": "blk.{i}.ffn_gate.weight",
    "model.layers.{i}.mlp.up_proj.weight": "blk.{i}.ffn_up.weight",
    "model.layers.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
    "model.layers.{i}.input_layernorm.weight": "blk.{i}.attn_norm.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "blk.{i}.ffn_norm.weight",
}


@dataclass(frozen=True)
class GgufExport:
    path: Path
    modelfile: Path | None  # None when the chat template has no Ollama rendering (not ChatML)
    card: Path
    warnings: list[str]


def export_gguf(config: Config, run: RunPaths, out: Path, half: bool = True, pre: str | None = None) -> GgufExport:
    """Merge the run's adapter, then write the merged model as GGUF (f16 matrices, f32 norms), its
    Ollama Modelfile (`<stem>.Modelfile`) and model card (`<stem>.md`)."""
    warnings = []
    pre = pre_tokenizer(load_tokenizer(run.adapter), run.adapter, pre)  # refuse before the merge's minutes
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as scratch:
        merged = merge_adapter(config, run, Path(scratch) / "merged").path
        write_gguf(merged, out, config.task.name, half, pre)
        tokenizer = load_tokenizer(merged)
        card = merged_card(config, run, _adapter_method(merged), tokenizer)
    card_path = out.with_suffix(".md")
    ollama: Path | None = out.with_suffix(".Modelfile")
    try:
        text = modelfile(out, tokenizer.chat_template, config.task.system_prompt, list(card.stop_tokens))
        write_text(out.with_suffix(".Modelfile"), text)
    except ModelError as exc:
        warnings.append(str(exc))
        ollama = None
    write_text(card_path, gguf_card(card, out, ollama, half).render())
    return GgufExport(out, ollama, card_path, warnings)


def _adapter_method(merged: Path) -> str:
    return str(read_json(merged / "tunewright-merged.json")["method"])


def gguf_card(card: ModelCard, gguf_file: Path, ollama: Path | None, half: bool) -> ModelCard:
    precision = "f16 matrices (answers may differ slightly from tunewright's fp32)" if half else "f32"
    usage = (f"Weights: {precision}.\n\n```python\nfrom llama_cpp import Llama\n\n"
             f"llm = Llama(model_path={gguf_file.name!r}, n_ctx=2048)  # the GGUF's own chat template\n"
             "reply = llm.create_chat_completion(messages=[{\"role\": \"user\", \"content\": \"...\"}], "
             "temperature=0)\n```\n")
    if ollama is not None:
        usage += f"\nOllama: `ollama create {card.task} -f {ollama.name}` then `ollama run {card.task}`.\n"
    return replace(card, title=f"{card.task} (GGUF)", usage=usage)


def write_gguf(model_dir: Path, out: Path, name: str, half: bool = True, pre: str | None = None) -> None:
    import gguf
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer

    hf = read_json(model_dir / "config.json")
    if hf.get("model_type") != "llama":
        raise ModelError(f"{model_dir}: GGUF export covers the Llama architecture; this is {hf.get('model_type')}")
    heads, kv_heads = int(hf["num_attention_heads"]), int(hf.get("num_key_value_heads") or hf["num_attention_heads"])
    tensors: dict[str, np.ndarray] = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    tmp = out.with_name(f".{out.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if half else gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(int(hf["max_position_embeddings"]))
    writer.add_embedding_length(int(hf["hidden_size"]))
    writer.add_block_count(int(hf["num_hidden_layers"]))
    writer.add_feed_forward_length(int(hf["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(float(hf["rms_norm_eps"]))
    writer.add_rope_freq_base(float((hf.get("rope_parameters") or {}).get("rope_theta") or hf.get("rope_theta", 1e4)))
    writer.add_rope_dimension_count(int(hf.get("head_dim") or hf["hidden_size"] // heads))
    writer.add_vocab_size(int(hf["vocab_size"]))
    add_tokenizer(writer, AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False), model_dir, pre)
    for hf_name, tensor in sorted(tensors.items()):
        gguf_name = _gguf_name(hf_name)
        if hf_name.endswith(("q_proj.weight", "k_proj.weight")):
            tensor = _permute(tensor, heads if "q_proj" in hf_name else kv_heads)
        tensor = tensor.astype(np.float16 if half and tensor.ndim == 2 else np.float32)
        writer.add_tensor(gguf_name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.chmod(ARTIFACT_MODE)
    tmp.replace(out)


def _gguf_name(hf_name: str) -> str:
    parts = hf_name.split(".")
    layer = parts[2] if hf_name.startswith("model.layers.") else None
    template = hf_name.replace(f".{layer}.", ".{i}.", 1) if layer is not None else hf_name
    if template not in LLAMA_TENSORS:
        raise ModelError(f"tensor {hf_name}: no GGUF name for it (not a plain Llama model?)")
    return LLAMA_TENSORS[template].format(i=layer)


def _permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face stores q/k rows for rotate-half RoPE; llama.cpp expects them interleaved per head."""
    per_head = weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
    return np.ascontiguousarray(per_head.swapaxes(1, 2)).reshape(weight.shape)
