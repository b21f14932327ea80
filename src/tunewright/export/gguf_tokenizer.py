"""A Hugging Face fast tokenizer as GGUF metadata: byte-level BPE vocabulary, merges, special ids, the
chat template, and `tokenizer.ggml.pre` chosen the way llama.cpp's converter chooses it, by hashing
the tokens of its check text (llama_cpp_pre.json holds that text and the hashes llama.cpp knows)."""

from __future__ import annotations

import json
from functools import cache
from hashlib import sha256
from pathlib import Path
from typing import Any

from tunewright.errors import ModelError

PRE_TABLE = Path(__file__).with_name("llama_cpp_pre.json")


@cache
def _pre_table() -> dict[str, Any]:
    table: dict[str, Any] = json.loads(PRE_TABLE.read_text(encoding="utf-8"))
    return table


def known_pre_tokenizers() -> set[str]:
    return set(_pre_table()["hashes"].values())


def pre_tokenizer(tokenizer: Any, model_dir: Path, override: str | None = None) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer. A wrong one splits text differently (the
    prompt gets other tokens), so an unknown tokenizer is refused rather than written as `default`."""
    if override is not None:
        if override not in known_pre_tokenizers():
            raise ModelError(f"--gguf-pre {override!r}: not a pre-tokenizer llama.cpp knows; use one of "
                             f"{', '.join(sorted(known_pre_tokenizers()))}")
        return override
    table = _pre_table()
    digest = sha256(str(tokenizer.encode(table["check_text"])).encode()).hexdigest()
    name = table["hashes"].get(digest)
    if name is None:
        raise ModelError(f"{model_dir}: llama.cpp does not know this tokenizer (check hash {digest[:12]}), so a GGUF "
                         "would tokenize prompts differently; if you know its pre-tokenizer, pass --gguf-pre NAME "
                         "(e.g. gpt-2, llama-bpe, qwen2, smollm)")
    return str(name)


def add_tokenizer(writer: Any, tokenizer: Any, model_dir: Path, pre: str | None = None) -> None:
    """Byte-level BPE vocabulary, merges, pre-tokenizer, special token ids and the chat template."""
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
    writer.add_tokenizer_pre(pre_tokenizer(tokenizer, model_dir, pre))
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
    writer.add_add_bos_token(False)  # the chat template writes every marker itself
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
