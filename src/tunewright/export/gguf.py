"""Export for llama.cpp / Ollama: a run merged into one GGUF file (Llama architecture, written with the
`gguf` package), tokenizer and chat template included."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tunewright.config import Config
from tunewright.errors import ModelError
from tunewright.merge import merge_adapter
from tunewright.runs import RunPaths, read_json

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


def export_gguf(config: Config, run: RunPaths, out: Path, half: bool = True) -> Path:
    """Merge the run's adapter, then write the merged model as GGUF (f16 matrices, f32 norms)."""
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as scratch:
        merged = merge_adapter(config, run, Path(scratch) / "merged").path
        write_gguf(merged, out, config.task.name, half)
    return out


def write_gguf(model_dir: Path, out: Path, name: str, half: bool = True) -> None:
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
    _add_tokenizer(writer, AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False), model_dir)
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


def _add_tokenizer(writer: Any, tokenizer: Any, model_dir: Path) -> None:
    """Byte-level BPE vocabulary, merges, special token ids and the chat template."""
    import gguf

    if not (model_dir / "tokenizer.json").is_file():
        raise ModelError(f"{model_dir}: GGUF export needs a fast tokenizer (tokenizer.json)")
    backend = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    if backend["model"]["type"] != "BPE":
        raise ModelError(f"{model_dir}: GGUF export covers byte-level BPE tokenizers, not {backend['model']['type']}")
    vocab = tokenizer.get_vocab()
    tokens = [""] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    special = set(tokenizer.all_special_ids) | {t["id"] for t in backend.get("added_tokens", []) if t["special"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
                            for i in range(len(tokens))])
    merges = backend["model"]["merges"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    for token_id, add in ((tokenizer.bos_token_id, writer.add_bos_token_id),
                          (tokenizer.eos_token_id, writer.add_eos_token_id),
                          (tokenizer.pad_token_id, writer.add_pad_token_id)):
        if token_id is not None:
            add(int(token_id))
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
