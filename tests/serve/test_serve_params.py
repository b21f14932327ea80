"""The OpenAI surface against the real server with the official openai client: every parameter is
honoured (seeded sampling repeats, `n` choices, `stop` cuts, `max_completion_tokens`, log probabilities,
penalties and logit bias, `user` logged, content parts, the developer role, the usage chunk) or refused
with a 400 naming it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tunewright.feedback.store import FeedbackStore
from tunewright.library import AdapterLibrary
from tunewright.serve.app import create_app
from tunewright.serve.completions import Limits
from tunewright.serve.engine import Engine

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
HI = [{"role": "user", "content": "I cannot log in to the app"}]
Running = Callable[[object], AbstractContextManager[str]]


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path, adapter_library: Path, serve_app: Running,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[openai.OpenAI, str, FeedbackStore]]:
    store = FeedbackStore(tmp_path_factory.mktemp("params") / "feedback.db")
    engine = Engine("base", tiny_model_dir, AdapterLibrary(adapter_library))
    with serve_app(create_app(engine, {KEY}, Limits(max_tokens=16), store)) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60), url, store


def chat(client: openai.OpenAI, **params: Any) -> Any:
    params.setdefault("messages", HI)
    return client.chat.completions.create(model=params.pop("model", "base"), **params)


def test_seeded_sampling_repeats_and_seeds_differ(served: tuple[openai.OpenAI, str, FeedbackStore]) -> None:
    client = served[0]
    sampled = {seed: [chat(client, temperature=1.5, top_p=0.95, extra_body={"top_k": 50}, seed=seed, max_tokens=12)
                      .choices[0].message.content for _ in range(2)] for seed in (1, 2, 3)}
    assert all(first == second for first, second in sampled.values())  # the same seed, the same answer
    assert len({answers[0] for answers in sampled.values()}) > 1  # and the seed matters
    greedy = chat(client, max_tokens=12).choices[0].message.content
    assert chat(client, temperature=0, seed=5, max_tokens=12).choices[0].message.content == greedy


def test_n_choices_stop_strings_and_max_completion_tokens(served: tuple[openai.OpenAI, str, FeedbackStore]) -> None:
    client = served[0]
    many = chat(client, n=3, temperature=1.5, seed=11, max_tokens=8)
    assert [choice.index for choice in many.choices] == [0, 1, 2]
    assert many.usage is not None and 3 <= many.usage.completion_tokens <= 24
    assert len({c.message.content for c in many.choices}) > 1  # each choice draws with its own seed
    full = chat(client, model="fraud", max_tokens=16).choices[0].message.content
    assert full == "[Intent: Fraud Report]"
    cut = chat(client, model="fraud", max_tokens=16, stop=["Rep", "never-appears"])
    assert cut.choices[0].message.content == "[Intent: Fraud" and cut.choices[0].finish_reason == "stop"
    streamed = chat(client, model="fraud", max_tokens=16, stop="Rep", stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == cut.choices[0].message.content
    short = chat(client, max_completion_tokens=5)
    assert short.usage.completion_tokens == 5 and short.choices[0].finish_reason == "length"  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError) as refused:
        chat(client, max_completion_tokens=5, max_tokens=6)
    assert refused.value.param == "max_completion_tokens"  # type: ignore[attr-defined]


def test_logprobs_are_those_of_the_chosen_tokens(served: tuple[openai.OpenAI, str, FeedbackStore]) -> None:
    client = served[0]
    reply = chat(client, max_tokens=6, logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content
    assert content and len(content) <= 6
    for entry in content:
        tops = [top.logprob for top in entry.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True) and all(lp <= 0 for lp in tops)
        assert entry.logprob == pytest.approx(tops[0])  # greedy picks the likeliest token
        assert sum(math.exp(lp) for lp in tops) <= 1 + 1e-5
    assert "".join(entry.token for entry in content).strip() == reply.choices[0].message.content
    assert chat(client, max_tokens=6).choices[0].logprobs is None
    text = client.completions.create(model="base", prompt="hello there", max_tokens=4, logprobs=2)
    legacy = text.choices[0].logprobs
    assert legacy is not None and len(legacy.token_logprobs or []) == len(legacy.tokens or []) > 0
    assert all(len(alternatives) == 2 for alternatives in legacy.top_logprobs or [])


def test_penalties_and_logit_bias_change_the_answer(served: tuple[openai.OpenAI, str, FeedbackStore]) -> None:
    client = served[0]
    forced = chat(client, max_tokens=6, logit_bias={"70": 100}, logprobs=True)
    forced_tokens = [entry.token for entry in forced.choices[0].logprobs.content]
    assert forced_tokens == forced_tokens[:1] * 6
    varied = chat(client, max_tokens=6, logit_bias={"70": 3}, frequency_penalty=2, logprobs=True)
    repeated = chat(client, max_tokens=6, logit_bias={"70": 3}, logprobs=True)
    tokens = [[e.token for e in r.choices[0].logprobs.content] for r in (varied, repeated)]
    assert max(tokens[0].count(t) for t in tokens[0]) < max(tokens[1].count(t) for t in tokens[1])
    presence = chat(client, max_tokens=6, logit_bias={"70": 3}, presence_penalty=2, logprobs=True)
    first, second = presence.choices[0].logprobs.content[:2]
    unpenalised = repeated.choices[0].logprobs.content
    assert first.token == tokens[1][0] and first.logprob == pytest.approx(unpenalised[0].logprob)
    if second.token == first.token:  # repeating the token now costs the penalty
        assert second.logprob < unpenalised[1].logprob


def test_what_clients_send_as_a_matter_of_course(served: tuple[openai.OpenAI, str, FeedbackStore]) -> None:
    client, _, store = served
    plain = chat(client, max_tokens=8, messages=[{"role": "system", "content": "Be brief."}, *HI])
    parts = chat(client, max_tokens=8, user="end-user-7", messages=[
        {"role": "developer", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]},
        {"role": "user", "content": [{"type": "text", "text": HI[0]["content"]}]}])
    assert parts.choices[0].message.content == plain.choices[0].message.content
    assert {row.id: row.user for row in store.exchanges()}[parts.id] == "end-user-7"
    turns = chat(client, max_tokens=4, messages=[*HI, {"role": "assistant", "content": None, "tool_calls": None},
                                                 {"role": "user", "content": "and?"}])
    assert turns.choices[0].finish_reason in {"stop", "length"}
    chunks = list(chat(client, max_tokens=4, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4  # type: ignore[union-attr]
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert all(chunk.usage is None for chunk in chat(client, max_tokens=4, stream=True))


@pytest.mark.parametrize(("params", "param"), [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),  # json_object / json_schema are served
    ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, *HI]},
     "messages[0].tool_calls"),
    ({"messages": [{"role": "user", "content": "hi", "name": "jo"}]}, "messages[0].name"),
    ({"n": 2, "stream": True}, "n"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"logit_bias": {"x": 1}}, "logit_bias"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
])
def test_what_is_not_implemented_is_a_400_naming_it(served: tuple[openai.OpenAI, str, FeedbackStore],
                                                     params: dict[str, Any], param: str) -> None:
    url = served[1]
    response = httpx.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=30,
                          json={"model": "base", "messages": HI, **params})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and param.split(".")[-1].split("[")[0] in error["message"]


@pytest.mark.parametrize(("params", "param"), [({"echo": True}, "echo"), ({"suffix": "x"}, "suffix"),
                                               ({"best_of": 2}, "best_of")])
def test_completions_refusals(served: tuple[openai.OpenAI, str, FeedbackStore], params: dict[str, Any],
                              param: str) -> None:
    response = httpx.post(f"{served[1]}/v1/completions", headers=AUTH, timeout=30,
                          json={"model": "base", "prompt": "hi", **params})
    assert response.status_code == 400 and response.json()["error"]["param"] == param
