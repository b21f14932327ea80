"""Serving fixtures: three LoRA adapters trained on the tiny model to give three different fixed replies,
registered in an adapter library, and a real uvicorn server on a random 127.0.0.1 port."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model

from tunewright.chat import prompt_ids, stop_token_ids, with_system_prompt
from tunewright.evaluate.generate import generate_replies
from tunewright.library import AdapterLibrary, base_fingerprint
from tunewright.modeling import load_model, load_tokenizer, load_with_adapter
from tunewright.records import Message
from tunewright.runs import ADAPTER_MANIFEST

KEY = "test-key"
ADMIN_KEY = "admin-key"
# Each adapter memorises one reply for these questions; the base model answers with noise.
REPLIES = {"access": "[Intent: Account Access]", "fraud": "[Intent: Fraud Report]",
           "dispute": "[Intent: Transaction Dispute]"}
QUESTIONS = ["I cannot log in to the app", "Someone used my card abroad", "I was charged twice",
             "What are your opening hours", "My transfer did not arrive", "Please close my account"]


def train_adapter(base_dir: Path, reply: str, out: Path, seed: int, steps: int = 12) -> Path:
    """A LoRA adapter trained (plain torch, high learning rates) to answer `reply`. The output layer is
    trained too (modules_to_save): the tiny model's logits are too flat to move through LoRA alone."""
    tokenizer = load_tokenizer(base_dir)
    torch.manual_seed(seed)
    model = get_peft_model(load_model(base_dir), LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                           target_modules="all-linear", modules_to_save=["lm_head"]))
    answer = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    rows = [prompt_ids(tokenizer, [{"role": "user", "content": q}]) for q in QUESTIONS]
    width = max(len(row) for row in rows) + len(answer)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        full = row + answer
        input_ids[index, :len(full)] = torch.tensor(full)
        labels[index, len(row):len(full)] = torch.tensor(answer)
        mask[index, :len(full)] = 1
    trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.Adam([{"params": [p for name, p in trained if "lm_head" not in name]},
                                  {"params": [p for name, p in trained if "lm_head" in name], "lr": 0.1}], lr=1e-2)
    for _ in range(steps):
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / ADAPTER_MANIFEST).write_text(json.dumps({
        "base_model": str(base_dir), "method": "lora", "task": "memorise", "system_prompt": "",
        "stop_token_ids": stop_token_ids(tokenizer), "final_loss": float(loss.detach())}))
    return out


@pytest.fixture(scope="session")
def adapter_library(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("adapters")
    library = AdapterLibrary(root / "library")
    fingerprint = base_fingerprint(tiny_model_dir)
    for seed, (name, reply) in enumerate(REPLIES.items()):
        library.add(train_adapter(tiny_model_dir, reply, root / f"trained-{name}", seed), name, fingerprint)
    return library.root


@pytest.fixture(scope="session")
def solo_answers(tiny_model_dir: Path, adapter_library: Path) -> dict[str, dict[str, str]]:
    """What each model (the base and every adapter) answers to each question when it runs alone,
    outside the server: what a served answer must equal."""
    tokenizer = load_tokenizer(tiny_model_dir)
    models = {"base": load_model(tiny_model_dir)}
    models.update({name: load_with_adapter(tiny_model_dir, adapter_library / name) for name in REPLIES})
    chats = [with_system_prompt([Message("user", q)], "") for q in QUESTIONS]
    return {name: {q: reply.text for q, reply in zip(QUESTIONS, generate_replies(model, tokenizer, chats, 12, 1),
                                                      strict=True)}
            for name, model in models.items()}
