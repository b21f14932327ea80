"""Adapters that cannot share the base's batches (DoRA, IA3, prompt and prefix tuning) are served in
batches of their own and answer exactly as the same adapter does through peft alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import IA3Config, LoraConfig, PeftModel, PromptTuningConfig, get_peft_model

from tunewright.chat import prompt_ids, stop_token_ids
from tunewright.library import AdapterLibrary, base_fingerprint
from tunewright.modeling import load_model, load_tokenizer
from tunewright.records import Message
from tunewright.runs import ADAPTER_MANIFEST, write_json
from tunewright.serve.engine import Engine
from tunewright.serve.sampling import Token

CONFIGS = {
    # the output layer is trained too: the tiny model's flat logits hide smaller changes from greedy decoding
    "dora": LoraConfig(r=4, target_modules="all-linear", use_dora=True, modules_to_save=["lm_head"]),
    "ia3": IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"],
                     modules_to_save=["lm_head"]),
    "prompt": PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=6, modules_to_save=["lm_head"]),
}
QUESTIONS = ["I cannot log in", "Someone used my card"]


@pytest.mark.parametrize("method", list(CONFIGS))
def test_solo_adapters_answer_as_peft_does(method: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = get_peft_model(load_model(tiny_model_dir), CONFIGS[method])
    for parameter in model.parameters():  # large random weights: the tiny model's answer must change
        if parameter.requires_grad:
            torch.nn.init.normal_(parameter, std=1.0)
    model.save_pretrained(tmp_path / "trained", safe_serialization=True)
    tokenizer = load_tokenizer(tiny_model_dir)
    write_json(tmp_path / "trained" / ADAPTER_MANIFEST, {"base_model": str(tiny_model_dir), "method": method})
    library = AdapterLibrary(tmp_path / "library")
    library.add(tmp_path / "trained", method, base_fingerprint(tiny_model_dir))
    engine = Engine("base", tiny_model_dir, library)
    served: list[list[int]] = [[] for _ in range(4)]

    def on_token(index: int, token: Token, last: bool) -> bool:
        served[index].append(token.id)
        return True

    # the scheduler never puts a solo adapter in a batch with the base, so: one batch each
    for offset, name in ((0, method), (2, "base")):
        batch = [engine.prompt(name, [Message("user", q)], 8) for q in QUESTIONS]
        engine.run(batch, lambda i, t, last, o=offset: on_token(i + o, t, last))
    local = PeftModel.from_pretrained(load_model(tiny_model_dir), library.root / method).eval()
    stops = stop_token_ids(tokenizer)
    for index, question in enumerate(QUESTIONS):
        ids = torch.tensor([prompt_ids(tokenizer, [{"role": "user", "content": question}])])
        out = local.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                             do_sample=False, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
        assert served[index] == out[0, ids.shape[1]:].tolist()
    assert served[:2] != served[2:]  # and the adapter answers differently from the base
