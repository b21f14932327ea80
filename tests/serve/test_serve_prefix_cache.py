"""The prefix cache: a system prompt shared by requests of one model is encoded once (a miss) and its
key/value states start the prompt pass of the next ones (hits); with greedy decoding every row's tokens
equal that request run alone without the cache, base and stacked-LoRA rows, in one batch and joining a
running one. Entries never cross adapters, leave with their adapter and stay within the byte budget."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest
import torch
from peft import LoraConfig, get_peft_model

from tunewright.chat_content import chat_ids
from tunewright.library import AdapterLibrary, base_fingerprint
from tunewright.modeling import load_model, load_tokenizer
from tunewright.records import Message
from tunewright.runs import ADAPTER_MANIFEST, write_json
from tunewright.serve.app import create_app
from tunewright.serve.engine import Engine, Prompt
from tunewright.serve.prefix_cache import MIN_PREFIX_TOKENS, PrefixStats
from tunewright.serve.sampling import GREEDY, Token

SYSTEM = ("You are the support assistant of a bank. Answer in one short sentence, never ask for a card "
          "number or a password, and send fraud reports to the fraud team.")
OTHER = "You are a billing assistant. Name the charge, the date and the amount in every answer you give."
QUESTIONS = ["I cannot log in", "Someone used my card", "I was charged twice", "Close my account", "hello"]
MODELS = ["base", "r4", "r8"]
DEFAULT_SYSTEM = ("{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant of a "
                  "bank. Answer every question about cards, transfers and accounts in plain words.<|im_end|>\\n' }}"
                  "{% endif %}")  # as SmolLM2's template (the packaged model's) opens a chat that has no system message
Running = Callable[[object], AbstractContextManager[str]]


@pytest.fixture(scope="module")
def lora_library(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two plain LoRA adapters with random A and B (each moves the keys and values), ranks 4 and 8."""
    root = tmp_path_factory.mktemp("prefix-lora")
    library = AdapterLibrary(root / "library")
    tokenizer = load_tokenizer(tiny_model_dir)
    for seed, rank in enumerate((4, 8)):
        torch.manual_seed(seed)
        config = LoraConfig(r=rank, lora_alpha=4 * rank, target_modules="all-linear", init_lora_weights=False)
        out = root / f"trained-{seed}"
        get_peft_model(load_model(tiny_model_dir), config).save_pretrained(out, safe_serialization=True)
        write_json(out / ADAPTER_MANIFEST, {"base_model": str(tiny_model_dir), "method": "lora",
                                            "stop_token_ids": [tokenizer.eos_token_id]})
        library.add(out, f"r{rank}", base_fingerprint(tiny_model_dir))
    return library.root


def engine_for(tiny_model_dir: Path, library: Path, **options: int) -> Engine:
    return Engine("base", tiny_model_dir, AdapterLibrary(library), max_loaded=3, **options)


def chat(engine: Engine, model: str, question: str, budget: int = 8, system: str = SYSTEM) -> Prompt:
    return replace(engine.prompt(model, [Message("system", system), Message("user", question)], budget),
                   sampling=GREEDY)


def tokens_of(engine: Engine, prompts: list[Prompt]) -> list[list[int]]:
    tokens: list[list[int]] = [[] for _ in prompts]

    def on_token(index: int, token: Token, last: bool) -> bool:
        tokens[index].append(token.id)
        return True

    engine.run(prompts, on_token)
    return tokens


def alone(tiny_model_dir: Path, library: Path, jobs: list[tuple[str, str, int]]) -> list[list[int]]:
    """Each job run by itself on an engine without a prefix cache."""
    plain = engine_for(tiny_model_dir, library, prefix_cache_bytes=0)
    return [tokens_of(plain, [chat(plain, model, question, budget)])[0] for model, question, budget in jobs]


def test_system_prompt_is_encoded_once_and_answers_equal_uncached(tiny_model_dir: Path, lora_library: Path) -> None:
    engine = engine_for(tiny_model_dir, lora_library)
    first = chat(engine, "base", QUESTIONS[0])
    assert first.prefix_len >= MIN_PREFIX_TOKENS and first.prefix_len < len(first.prompt_ids)
    jobs = [(MODELS[i % 3], QUESTIONS[i % len(QUESTIONS)], 8) for i in range(9)]
    expected = alone(tiny_model_dir, lora_library, jobs)
    opening = [tokens_of(engine, [chat(engine, model, q, budget)])[0] for model, q, budget in jobs[:3]]
    assert engine.prefix_stats().misses == 3 and engine.prefix_stats().hits == 0  # one entry per model
    held = engine.prefix_stats().bytes
    assert held > 0 and engine.prefixes is not None and len(engine.prefixes.entries) == 3
    mixed = tokens_of(engine, [chat(engine, model, q, budget) for model, q, budget in jobs])  # one stacked batch
    stats = engine.prefix_stats()
    assert (stats.hits, stats.misses, stats.bytes) == (9, 3, held)  # every row of the batch started from a prefix
    assert engine._stacked is not None
    assert set(engine._stacked.adapters) == {adapter.peft_name for adapter in engine.loaded.values()}
    assert opening == expected[:3] and mixed == expected
    assert len({tuple(tokens) for tokens in expected}) > 3  # the models answer differently


def test_rows_joining_a_running_batch_start_from_the_cache_and_decode_as_alone(
    tiny_model_dir: Path, lora_library: Path,
) -> None:
    """Joining rows mix hits, misses (another system prompt) and rows with no system prompt in one
    prompt pass; the batch keeps decoding the rows already in it."""
    engine = engine_for(tiny_model_dir, lora_library)
    warm = [chat(engine, model, QUESTIONS[4], 2) for model in MODELS]
    tokens_of(engine, warm)  # loads the adapters and caches SYSTEM for each model
    jobs = [(MODELS[i % 3], QUESTIONS[(2 * i) % len(QUESTIONS)], budget)
            for i, budget in enumerate([10, 3, 9, 5, 10, 2, 7, 10])]
    prompts = [chat(engine, model, q, budget) for model, q, budget in jobs]
    prompts[3] = chat(engine, jobs[3][0], jobs[3][1], jobs[3][2], system=OTHER)
    prompts[5] = replace(engine.prompt(jobs[5][0], [Message("user", jobs[5][1])], jobs[5][2]), sampling=GREEDY)
    assert prompts[5].prefix_len == 0
    arrivals = {1: prompts[1:2], 2: prompts[2:6], 5: prompts[6:8]}
    calls = [0]

    def more(adapters_ok: bool) -> list[Prompt]:
        calls[0] += 1
        return arrivals.get(calls[0], [])

    tokens: list[list[int]] = [[] for _ in prompts]
    before = engine.prefix_stats()
    engine.run(prompts[:1], lambda index, token, last: tokens[index].append(token.id) is None, more=more)
    stats = engine.prefix_stats()
    assert (stats.hits - before.hits, stats.misses - before.misses) == (6, 1)  # OTHER missed
    plain = engine_for(tiny_model_dir, lora_library, prefix_cache_bytes=0)
    expected = [tokens_of(plain, [replace(prompt, prefix_len=0)])[0] for prompt in prompts]
    assert [len(t) for t in tokens] == [budget for _, _, budget in jobs]
    assert tokens == expected


def test_adapters_never_share_an_entry_and_entries_leave_with_their_adapter(
    tiny_model_dir: Path, lora_library: Path,
) -> None:
    engine = engine_for(tiny_model_dir, lora_library)
    prefixes = engine.prefixes
    assert prefixes is not None
    tokens_of(engine, [chat(engine, model, QUESTIONS[0]) for model in MODELS])
    assert prefixes.stats().misses == 3 and prefixes.stats().hits == 0
    by_model = {key[0]: states for key, states in prefixes.entries.items()}
    assert set(by_model) == {None, "r4", "r8"}
    assert len({key[2] for key in prefixes.entries}) == 1  # the same prefix ids, three entries
    keys = [torch.cat([k.flatten() for k, _ in by_model[name]]) for name in (None, "r4", "r8")]
    assert not torch.allclose(keys[0], keys[1]) and not torch.allclose(keys[1], keys[2])  # LoRA moves them
    held = prefixes.bytes
    engine.unload("r4")
    assert {key[0] for key in prefixes.entries} == {None, "r8"} and prefixes.bytes == held * 2 // 3
    tokens_of(engine, [chat(engine, "r4", QUESTIONS[1])])  # loaded afresh: its earlier states are gone
    assert prefixes.stats().misses == 4 and prefixes.stats().hits == 0
    small = Engine("base", tiny_model_dir, AdapterLibrary(lora_library), max_loaded=1)
    tokens_of(small, [chat(small, "r4", QUESTIONS[0])])
    tokens_of(small, [chat(small, "r8", QUESTIONS[0])])  # evicts r4 from the pool, and its entry
    assert small.prefixes is not None and [key[0] for key in small.prefixes.entries] == ["r8"]


def test_least_recently_used_entries_leave_at_the_byte_budget(tiny_model_dir: Path, lora_library: Path) -> None:
    systems = [SYSTEM, OTHER, OTHER + " Be kind and brief."]
    probe = engine_for(tiny_model_dir, lora_library)
    sizes = []
    for system in systems:
        before = probe.prefix_stats().bytes
        tokens_of(probe, [chat(probe, "base", QUESTIONS[0], 2, system)])
        sizes.append(probe.prefix_stats().bytes - before)
    assert all(sizes)
    budget = max(sizes[0] + sizes[1], sizes[0] + sizes[2], sizes[1] + sizes[2])  # any two fit, three do not
    engine = engine_for(tiny_model_dir, lora_library, prefix_cache_bytes=budget)
    for system in [systems[0], systems[1], systems[0], systems[2]]:  # the first is used again: the second is oldest
        tokens_of(engine, [chat(engine, "base", QUESTIONS[0], 2, system)])
    prefix_of = {system: tuple(p.prompt_ids[:p.prefix_len]) for system in systems
                 for p in [chat(engine, "base", QUESTIONS[0], 2, system)]}
    assert engine.prefixes is not None
    assert [key[2] for key in engine.prefixes.entries] == [prefix_of[systems[0]], prefix_of[systems[2]]]
    assert engine.prefix_stats() == PrefixStats(hits=1, misses=3, bytes=sizes[0] + sizes[2])
    tiny = engine_for(tiny_model_dir, lora_library, prefix_cache_bytes=min(sizes) - 1)  # no entry fits
    tokens_of(tiny, [chat(tiny, "base", QUESTIONS[0], 2)])
    assert tiny.prefixes is not None and not tiny.prefixes.entries and tiny.prefix_stats().bytes == 0


def test_a_template_default_system_prompt_is_shared_by_chats_without_one(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "default-system"
    shutil.copytree(tiny_model_dir, model_dir)
    tokenizer = load_tokenizer(model_dir)
    tokenizer.chat_template = DEFAULT_SYSTEM + tokenizer.chat_template
    tokenizer.save_pretrained(model_dir)
    engine = Engine("base", model_dir, AdapterLibrary(tmp_path / "library"))
    prompts = [replace(engine.prompt("base", [Message("user", q)], 6), sampling=GREEDY) for q in QUESTIONS]
    opening = {tuple(prompt.prompt_ids[:prompt.prefix_len]) for prompt in prompts}
    assert len(opening) == 1 and prompts[0].prefix_len >= MIN_PREFIX_TOKENS
    assert tokenizer.decode(list(opening.pop())).replace(" ", "").endswith("<|im_end|>\n<|im_start|>user\n")
    plain = Engine("base", model_dir, AdapterLibrary(tmp_path / "library"), prefix_cache_bytes=0)
    expected = [tokens_of(plain, [prompt])[0] for prompt in prompts]
    assert tokens_of(engine, prompts[:1]) == expected[:1]
    assert tokens_of(engine, prompts) == expected
    assert engine.prefix_stats().misses == 1 and engine.prefix_stats().hits == len(prompts)


def test_short_system_prompts_and_raw_text_are_not_cached(tiny_model_dir: Path, lora_library: Path) -> None:
    engine = engine_for(tiny_model_dir, lora_library)
    short = [{"role": "system", "content": "ok"}]
    assert len(chat_ids(engine.tokenizer, short, add_generation_prompt=False)) < MIN_PREFIX_TOKENS
    assert chat(engine, "base", QUESTIONS[0], system="ok").prefix_len == 0
    assert engine.prompt("base", [], 4, raw=SYSTEM + " " + QUESTIONS[0]).prefix_len == 0
    assert engine_for(tiny_model_dir, lora_library, prefix_cache_bytes=0).prompt(
        "base", [Message("system", SYSTEM), Message("user", "hi")], 4).prefix_len == 0


def test_metrics_count_prefix_hits_misses_and_bytes(tiny_model_dir: Path, lora_library: Path,
                                                    serve_app: Running) -> None:
    engine = engine_for(tiny_model_dir, lora_library)
    app = create_app(engine, {"key"})
    with serve_app(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="key", max_retries=0, timeout=60)
        answers = [client.chat.completions.create(model="r4", max_tokens=4, messages=[
            {"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]).choices[0].message.content
            for q in QUESTIONS[:3]]
        text = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer key"}).text
    assert all(answer is not None for answer in answers)
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("tunewright_prefix_cache"))
    assert values["tunewright_prefix_cache_hits_total"] == "2"
    assert values["tunewright_prefix_cache_misses_total"] == "1"
    assert int(values["tunewright_prefix_cache_bytes"]) == engine.prefix_stats().bytes > 0


def test_bf16_base_caches_bf16_states_and_answers_equal_uncached(tiny_model_dir: Path, lora_library: Path) -> None:
    """On a bf16 base peft keeps the LoRA weights in fp32: the stacked delta is cast back to the layer's
    dtype, and the cached states are the model's bf16."""
    engines = [engine_for(tiny_model_dir, lora_library, prefix_cache_bytes=size) for size in (2**20, 0)]
    for engine in engines:
        engine.pool.base.to(torch.bfloat16)
    jobs = [(model, q, 8) for model in MODELS for q in QUESTIONS[:2]]
    cached, plain = engines
    tokens_of(cached, [chat(cached, model, q, budget) for model, q, budget in jobs])  # fills the cache
    hits = tokens_of(cached, [chat(cached, model, q, budget) for model, q, budget in jobs])
    assert cached.prefixes is not None and cached._stacked is not None
    assert {states[0][0].dtype for states in cached.prefixes.entries.values()} == {torch.bfloat16}
    assert cached.prefix_stats().hits == len(jobs)
    assert hits == tokens_of(plain, [chat(plain, model, q, budget) for model, q, budget in jobs])
