"""Schema-constrained decoding libraries side by side on this machine: xgrammar, llguidance,
outlines-core and lm-format-enforcer, each as a per-request transformers LogitsProcessor over the
packaged SmolLM2-135M tokenizer (49,152 tokens) and the SNIPS answer schema.

Measured per library: tokenizer preparation (once per tokenizer) and schema compile time; the mask cost
per token, replaying the gold answers of SNIPS validate queries token by token (every gold token must be
allowed and the end-of-turn token allowed at the end: correctness on valid answers); and greedy
generation of the base model on the same queries, tokens/s against unconstrained decoding, with the
share of answers that parse and validate.

    .venv/bin/pip install --target /tmp/grammars --no-deps xgrammar apache-tvm-ffi llguidance \\
        outlines-core lm-format-enforcer interegular
    PYTHONPATH=/tmp/grammars nice -n 10 .venv/bin/python bench/json_grammars.py --json bench/results/json_grammars.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from tunewright.chat import prompt_ids, stop_token_ids
from tunewright.modeling import load_model, load_tokenizer, resolve_base_model
from tunewright.schema import parse_answer

SNIPS = Path(os.environ.get("SNIPS_NLU_2017",
                            Path(__file__).resolve().parents[2] / "shared" / "datasets" / "snips-nlu-2017"))
INTENTS = ["AddToPlaylist", "GetWeather", "PlayMusic", "RateBook", "SearchCreativeWork"]
SYSTEM = ("Read the voice-assistant query. Answer with one JSON object: the intent, and the slots as "
          "{slot name: the words of the query}.")


def snips_queries(per_intent: int) -> list[tuple[str, str]]:
    """(query, gold answer JSON) from the validate files; slot names and keys sorted as in the schema."""
    rows = []
    for intent in INTENTS:
        data = json.loads((SNIPS / intent / f"validate_{intent}.json").read_text(encoding="utf-8"))[intent]
        for query in data[:per_intent]:
            text = "".join(piece["text"] for piece in query["data"])
            slots = {p["entity"]: p["text"] for p in query["data"] if "entity" in p}
            rows.append((text, json.dumps({"intent": intent, "slots": dict(sorted(slots.items()))},
                                          ensure_ascii=False)))
    return rows


def snips_schema(rows: list[tuple[str, str]]) -> dict[str, Any]:
    names = sorted({name for _, answer in rows for name in json.loads(answer)["slots"]})
    return {"type": "object", "additionalProperties": False, "required": ["intent", "slots"],
            "properties": {"intent": {"enum": INTENTS},
                           "slots": {"type": "object", "additionalProperties": False,
                                     "properties": {name: {"type": "string"} for name in names}}}}


class Replay(LogitsProcessor):
    """Shared row logic: remembers the prompt length, feeds each new token to `advance`, masks with
    `allowed` (a bool tensor over the vocabulary, or None once the grammar is done)."""

    def __init__(self, advance: Callable[[int], None], mask: Callable[[torch.Tensor], None]) -> None:
        self.advance, self.mask, self.seen = advance, mask, -1
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        start = time.perf_counter()
        if self.seen >= 0:
            for token in input_ids[0, self.seen:].tolist():
                self.advance(token)
        self.seen = input_ids.shape[1]
        self.mask(scores)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return scores


def make_xgrammar(tokenizer: Any, schema: dict[str, Any], vocab: int) -> Callable[[], Replay]:
    import xgrammar as xgr

    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab, stop_token_ids=stop_token_ids(tokenizer))
    compiled = xgr.GrammarCompiler(info).compile_json_schema(json.dumps(schema), any_whitespace=False)

    def fresh() -> Replay:
        matcher = xgr.GrammarMatcher(compiled)
        bitmask = xgr.allocate_token_bitmask(1, vocab)

        def mask(scores: torch.Tensor) -> None:
            matcher.fill_next_token_bitmask(bitmask)
            xgr.apply_token_bitmask_inplace(scores, bitmask)
        return Replay(lambda token: matcher.accept_token(token), mask)
    return fresh


def make_llguidance(tokenizer: Any, schema: dict[str, Any], vocab: int) -> Callable[[], Replay]:
    import llguidance
    import llguidance.hf
    import llguidance.torch

    ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab, eos_token=stop_token_ids(tokenizer))
    grammar = llguidance.LLMatcher.grammar_from_json_schema(
        schema, defaults={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "})

    template = llguidance.LLMatcher(ll_tokenizer, grammar)

    def fresh() -> Replay:
        matcher = template.deep_copy()
        bitmask = llguidance.torch.allocate_token_bitmask(1, vocab)

        def mask(scores: torch.Tensor) -> None:
            llguidance.torch.fill_next_token_bitmask(matcher, bitmask, 0)
            # llguidance.torch.apply_token_bitmask_inplace runs a torch.compile kernel (a C++ build on
            # first use on CPU); unpacking the bits with numpy is the same mask without it.
            allowed = np.unpackbits(bitmask.numpy().view(np.uint8), bitorder="little")[: scores.shape[1]]
            scores[0, torch.from_numpy(allowed == 0)] = float("-inf")  # as grammar.py does
        return Replay(lambda token: matcher.consume_token(token), mask)
    return fresh


def make_outlines_core(tokenizer: Any, schema: dict[str, Any], vocab: int) -> Callable[[], Replay]:
    from outlines_core import Guide, Index, Vocabulary
    from outlines_core.json_schema import build_regex_from_schema
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_of = {char: byte for byte, char in bytes_to_unicode().items()}
    tokens: dict[bytes, list[int]] = {}
    special = set(tokenizer.all_special_ids)
    for text, token_id in tokenizer.get_vocab().items():
        if token_id not in special:
            tokens.setdefault(bytes(byte_of[c] for c in text), []).append(token_id)
    eos = tokenizer.eos_token_id
    index = Index(build_regex_from_schema(json.dumps(schema), whitespace_pattern=r"[ ]?"), Vocabulary(eos, tokens))

    def fresh() -> Replay:
        guide = Guide(index)

        def mask(scores: torch.Tensor) -> None:
            allowed = torch.tensor(guide.get_tokens(), dtype=torch.long)
            keep = scores[0, allowed].clone()
            scores.fill_(float("-inf"))
            scores[0, allowed] = keep
        return Replay(lambda token: guide.advance(token), mask)
    return fresh


def make_lm_format_enforcer(tokenizer: Any, schema: dict[str, Any], vocab: int) -> Callable[[], Replay]:
    # Its transformers integration does not import under transformers 5 (tokenization_utils moved),
    # so the tokenizer data is built here the way that integration builds it.
    from lmformatenforcer import JsonSchemaParser, TokenEnforcer
    from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData

    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    regular = []
    for token_id in range(len(tokenizer)):
        if token_id in tokenizer.all_special_ids:
            continue
        after_zero = tokenizer.decode([zero, token_id])[1:]
        regular.append((token_id, after_zero, len(after_zero) > len(tokenizer.decode([token_id]))))
    data = TokenEnforcerTokenizerData(regular, lambda ids: tokenizer.decode(ids).rstrip("\ufffd"),
                                      tokenizer.eos_token_id, False, vocab)

    def fresh() -> Replay:
        enforcer = TokenEnforcer(data, JsonSchemaParser(schema))
        history: list[int] = []

        def mask(scores: torch.Tensor) -> None:
            allowed = torch.tensor(enforcer.get_allowed_tokens(history).allowed_tokens, dtype=torch.long)
            keep = scores[0, allowed].clone()
            scores.fill_(float("-inf"))
            scores[0, allowed] = keep
        return Replay(history.append, mask)
    return fresh


LIBRARIES = {"xgrammar": make_xgrammar, "llguidance": make_llguidance, "outlines-core": make_outlines_core,
             "lm-format-enforcer": make_lm_format_enforcer}


def replay(fresh: Callable[[], Replay], tokenizer: Any, answers: list[str], vocab: int) -> dict[str, Any]:
    """Feed each gold answer's tokens as if generated; a gold token the mask forbids is a false rejection."""
    eos = tokenizer.eos_token_id
    rejected, tokens, seconds = 0, 0, 0.0
    for answer in answers:
        ids = [*tokenizer.encode(answer, add_special_tokens=False), eos]
        processor = fresh()
        prefix = [0]  # a one-token "prompt"; generation starts after it
        for token in ids:
            scores = torch.zeros((1, vocab))
            processor(torch.tensor([prefix]), scores)
            if not torch.isfinite(scores[0, token]):
                rejected += 1
                break
            prefix.append(token)
        tokens += processor.calls
        seconds += processor.seconds
    return {"answers": len(answers), "false_rejections": rejected, "tokens": tokens,
            "mask_us_per_token": 1e6 * seconds / max(tokens, 1)}


def generate(model: Any, tokenizer: Any, queries: list[str], fresh: Callable[[], Replay] | None,
             schema: dict[str, Any], max_new_tokens: int) -> dict[str, Any]:
    stops = stop_token_ids(tokenizer)
    tokens, seconds, valid_json, valid_schema, finished = 0, 0.0, 0, 0, 0
    outputs = []
    for query in queries:
        ids = torch.tensor([prompt_ids(tokenizer, [{"role": "system", "content": SYSTEM},
                                                   {"role": "user", "content": query}])])
        extra = {"logits_processor": LogitsProcessorList([fresh()])} if fresh is not None else {}
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=stops, pad_token_id=stops[0], **extra)
        seconds += time.perf_counter() - start
        new = out[0, ids.shape[1]:].tolist()
        tokens += len(new)
        finished += bool(new and new[-1] in stops)
        text = tokenizer.decode(new, skip_special_tokens=True).strip()
        parsed = parse_answer(text, schema)
        valid_json += parsed.valid_json
        valid_schema += parsed.valid_schema
        outputs.append(text)
    n = len(queries)
    return {"tokens": tokens, "tokens_per_s": tokens / seconds, "valid_json": valid_json / n,
            "valid_schema": valid_schema / n, "finished": finished / n, "first_outputs": outputs[:3]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replay-per-intent", type=int, default=20)
    parser.add_argument("--generate-per-intent", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model_dir = resolve_base_model("smollm2-135m-instruct")
    tokenizer = load_tokenizer(model_dir)
    # --generate-per-intent 0 measures the grammars alone (no model): on a machine too loaded to time
    # generation, the mask cost per token is still each library's own.
    model = load_model(model_dir).eval() if args.generate_per_intent else None
    vocab = 49152 if model is None else model.config.vocab_size
    rows = snips_queries(args.replay_per_intent)
    schema = snips_schema(rows)
    queries = [query for query, _ in snips_queries(args.generate_per_intent)]
    results: dict[str, Any] = {}
    if model is not None:
        results["unconstrained"] = generate(model, tokenizer, queries, None, schema, args.max_new_tokens)
    for name, make in LIBRARIES.items():
        start = time.perf_counter()
        try:
            fresh = make(tokenizer, schema, vocab)
        except Exception as exc:  # a library that cannot be set up here is a result, not a crash
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        setup = time.perf_counter() - start
        start = time.perf_counter()
        fresh()
        first_request = time.perf_counter() - start
        results[name] = {"setup_s": setup, "fresh_processor_ms": 1e3 * first_request,
                         "replay": replay(fresh, tokenizer, [answer for _, answer in rows], vocab)}
        if model is not None:
            results[name]["generate"] = generate(model, tokenizer, queries, fresh, schema, args.max_new_tokens)
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"machine": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                "load_average": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d"),
                "replay_answers": len(rows), "generated": len(queries)}
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2, ensure_ascii=False) + "\n")


def print_table(results: dict[str, Any]) -> None:
    base_speed = results.get("unconstrained", {}).get("tokens_per_s")
    print(f"{'library':<20}{'setup s':>9}{'mask us/tok':>13}{'false rej':>11}{'tok/s':>8}{'vs free':>9}"
          f"{'JSON':>7}{'schema':>8}{'ended':>7}")
    for name, found in results.items():
        if "error" in found:
            print(f"{name:<20} {found['error'][:90]}")
            continue
        replayed = found.get("replay", {})
        line = (f"{name:<20}{found.get('setup_s', 0):>9.2f}{replayed.get('mask_us_per_token', 0):>13.0f}"
                f"{replayed.get('false_rejections', 0):>11}")
        gen = found.get("generate", found if name == "unconstrained" else None)
        if gen is not None and base_speed:
            line += (f"{gen['tokens_per_s']:>8.1f}{gen['tokens_per_s'] / base_speed - 1:>+9.1%}"
                     f"{gen['valid_json']:>7.0%}{gen['valid_schema']:>8.0%}{gen['finished']:>7.0%}")
        print(line)


if __name__ == "__main__":
    main()
