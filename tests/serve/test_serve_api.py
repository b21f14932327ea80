"""The real server under uvicorn on 127.0.0.1, driven with the official openai client: chat, streaming,
completions, models, feedback, metrics, admin routes, limits and OpenAI-shaped errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import openai
import pytest

from tunewright.chat import with_system_prompt
from tunewright.config import TaskConfig
from tunewright.data.check import check_dataset
from tunewright.evaluate.generate import generate_replies
from tunewright.feedback.preference_export import export_preferences
from tunewright.feedback.store import FeedbackStore
from tunewright.library import AdapterLibrary
from tunewright.modeling import load_tokenizer, load_with_adapter
from tunewright.records import Message
from tunewright.runs import ADAPTER_MANIFEST
from tunewright.serve.app import create_app
from tunewright.serve.completions import Limits
from tunewright.serve.engine import Engine

KEY, ADMIN = "test-key", "admin-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTION = "I cannot log in to the app"
Running = Callable[[object], AbstractContextManager[str]]


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path, adapter_library: Path, serve_app: Running,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine, FeedbackStore, Path]]:
    root = tmp_path_factory.mktemp("served")
    library = root / "library"
    shutil.copytree(adapter_library, library)
    engine = Engine("base", tiny_model_dir, AdapterLibrary(library), max_loaded=2)
    store = FeedbackStore(root / "feedback.db")
    limits = Limits(max_tokens=16, max_prompt_tokens=200, max_body_bytes=20_000)
    with serve_app(create_app(engine, {KEY}, limits, store, {ADMIN})) as url:
        yield url, engine, store, root


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


@pytest.mark.lowest
def test_chat_json_and_stream_match_the_adapter_run_locally(served: tuple[str, Engine, FeedbackStore, Path],
                                                             tiny_model_dir: Path) -> None:
    url, engine, store, _ = served
    local = load_with_adapter(tiny_model_dir, engine.library.root / "fraud")
    chat = with_system_prompt([Message("user", QUESTION)], "")
    expected = generate_replies(local, load_tokenizer(tiny_model_dir), [chat], 16, 1)[0]
    messages = [{"role": "user", "content": QUESTION}]
    response = client(url).chat.completions.create(model="fraud", max_tokens=16, messages=messages)  # type: ignore[arg-type]
    assert response.choices[0].message.content == expected.text == "[Intent: Fraud Report]"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None and response.usage.completion_tokens == expected.completion_tokens
    stream = client(url).chat.completions.create(model="fraud", max_tokens=16, messages=messages, stream=True)  # type: ignore[arg-type]
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected.text
    assert len([c for c in chunks if c.choices[0].delta.content]) > 1  # token by token, not one blob
    assert chunks[-1].choices[0].finish_reason == "stop" and {c.id for c in chunks} == {chunks[0].id}
    raw = httpx.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=30,
                     json={"model": "base", "messages": messages, "max_tokens": 4, "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.rstrip().endswith("data: [DONE]")
    assert {row.id for row in store.exchanges()} >= {response.id, chunks[0].id}


def test_completions_and_models(served: tuple[str, Engine, FeedbackStore, Path]) -> None:
    url = served[0]
    text = client(url).completions.create(model="access", prompt="<|im_start|>user\nhello<|im_end|>\n"
                                          "<|im_start|>assistant\n", max_tokens=16)
    assert text.choices[0].text == "[Intent: Account Access]" and text.id.startswith("cmpl-")
    models = client(url).models.list().data
    assert [m.id for m in models] == ["base", "access", "dispute", "fraud"]
    assert all(m.parent == "base" for m in models[1:]) and models[0].parent is None


def test_feedback_round_trip(served: tuple[str, Engine, FeedbackStore, Path]) -> None:
    url, _, store, _ = served
    response = client(url).chat.completions.create(
        model="dispute", max_tokens=16, messages=[{"role": "user", "content": "mail me at jo@example.com"}])
    sent = httpx.post(f"{url}/v1/feedback", headers=AUTH,
                      json={"response_id": response.id, "rating": 1, "correction": "[Intent: General Inquiry]"})
    assert sent.status_code == 200
    rated = {r.exchange.id: r for r in store.rated()}[response.id]
    assert rated.rating == 1 and rated.correction == "[Intent: General Inquiry]"
    assert rated.exchange.messages[-1].content == "mail me at <EMAIL>"  # redacted before it was stored
    missing = httpx.post(f"{url}/v1/feedback", headers=AUTH, json={"response_id": "nope", "rating": 1})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "response_id"


def test_feedback_exports_as_preference_rows_that_data_check_reads_back(
        served: tuple[str, Engine, FeedbackStore, Path], tmp_path: Path) -> None:
    """Served answers rated through the real server and SQLite store: a correction becomes a pair (served
    answer rejected), ratings without one KTO rows; exporting again against the first file adds nothing."""
    url, _, store, _ = served
    questions = ["my card was stolen on the bus", "what are your opening hours", "the app shows a wrong balance",
                 "do you have a branch in Leeds"]
    served_answers = {}
    for question in questions:
        response = client(url).chat.completions.create(model="fraud", max_tokens=16,
                                                       messages=[{"role": "user", "content": question}])
        served_answers[question] = (response.id, response.choices[0].message.content)
    feedback = [(questions[0], -1, "[Intent: Fraud Report] I have blocked the card; when did you last use it?"),
                (questions[1], 5, None), (questions[2], -1, None), (questions[3], 0, None)]
    for question, rating, correction in feedback:
        sent = httpx.post(f"{url}/v1/feedback", headers=AUTH, json={"response_id": served_answers[question][0],
                                                                     "rating": rating, "correction": correction})
        assert sent.status_code == 200
    task = TaskConfig(name="support", system_prompt="")
    out = tmp_path / "preferences.jsonl"
    result = export_preferences(store, out, task)
    report = check_dataset(out, task)
    assert not report.errors and len(report.preferences) == result.written
    by_prompt = {p.prompt[-1].content: p for p in report.preferences}
    pair = by_prompt[questions[0]]
    assert (pair.chosen, pair.rejected) == (feedback[0][2], served_answers[questions[0]][1])
    good, bad = by_prompt[questions[1]], by_prompt[questions[2]]
    assert (good.chosen, good.rejected) == (served_answers[questions[1]][1], None)
    assert (bad.chosen, bad.rejected) == (None, served_answers[questions[2]][1])
    assert questions[3] not in by_prompt  # a neutral rating says nothing either way
    again = export_preferences(store, tmp_path / "again.jsonl", task, dedupe_against=out)
    assert again.written == 0 and again.duplicates == result.written
    pairs = export_preferences(store, tmp_path / "pairs.jsonl", task, pairs_only=True)
    assert pairs.unpaired == 0 and pairs.pairs == result.pairs >= 1


def test_errors_are_openai_shaped(served: tuple[str, Engine, FeedbackStore, Path]) -> None:
    url = served[0]
    assert httpx.get(f"{url}/health").status_code == 200
    for path in ("/v1/models", "/metrics"):
        unauthorised = httpx.get(f"{url}{path}")
        assert unauthorised.status_code == 401 and unauthorised.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    hi = [{"role": "user", "content": "hi"}]
    for name in ("nope", "../fraud", "/etc", ".."):
        with pytest.raises(openai.NotFoundError):
            client(url).chat.completions.create(model=name, messages=hi)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client(url).chat.completions.create(model="base", max_tokens=10_000, messages=hi)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match=r"context_length_exceeded|tokens"):
        client(url).chat.completions.create(model="base", messages=[{"role": "user", "content": "word " * 400}])
    too_big = httpx.post(f"{url}/v1/chat/completions", headers=AUTH,
                         json={"model": "base", "messages": [{"role": "user", "content": "x" * 30_000}]})
    assert too_big.status_code == 413 and set(too_big.json()["error"]) == {"message", "type", "param", "code"}
    invalid = httpx.post(f"{url}/v1/chat/completions", headers=AUTH,
                         json={"model": "base", "messages": [{"role": "robot", "content": "hi"}]})
    assert invalid.status_code == 422 and invalid.json()["error"]["type"] == "invalid_request_error"
    metrics = httpx.get(f"{url}/metrics", headers=AUTH).text
    assert 'tunewright_requests_total{route="/v1/chat/completions",status="413"}' in metrics
    assert "tunewright_request_latency_seconds_bucket" in metrics and "tunewright_queue_depth" in metrics


def test_queue_full_is_429(tiny_model_dir: Path, adapter_library: Path, serve_app: Running) -> None:
    engine = Engine("base", tiny_model_dir, AdapterLibrary(adapter_library))
    with serve_app(create_app(engine, {KEY}, Limits(max_queue=0))) as url, pytest.raises(openai.RateLimitError):
        client(url).chat.completions.create(model="base", messages=[{"role": "user", "content": "hi"}])


def test_admin_routes_and_lru(served: tuple[str, Engine, FeedbackStore, Path], adapter_library: Path) -> None:
    url, engine, _, root = served
    admin = {"Authorization": f"Bearer {ADMIN}"}
    body = {"name": "fraud2", "path": str(adapter_library / "fraud")}
    assert httpx.post(f"{url}/v1/admin/adapters", headers=AUTH, json=body).status_code == 401
    assert httpx.post(f"{url}/v1/admin/adapters", headers=admin, json=body, timeout=180).status_code == 201
    replies = {"fraud2": "[Intent: Fraud Report]", "access": "[Intent: Account Access]",
               "dispute": "[Intent: Transaction Dispute]"}
    for model in ("fraud2", "access", "dispute", "fraud2"):  # max_loaded=2: the third one evicts one
        answer = client(url).chat.completions.create(model=model, max_tokens=16,
                                                     messages=[{"role": "user", "content": QUESTION}])
        assert answer.choices[0].message.content == replies[model]
    assert len(engine.loaded) <= 2 and engine.evictions >= 1
    assert httpx.delete(f"{url}/v1/admin/adapters/fraud2", headers=admin).status_code == 200
    assert "fraud2" not in [m.id for m in client(url).models.list().data]
    # replaced on disk while loaded (as `adapters remove` + `adapters add` would): the new one answers
    engine.library.add(adapter_library / "fraud", "swap", engine.fingerprint)
    ask = {"max_tokens": 16, "messages": [{"role": "user", "content": QUESTION}]}
    assert client(url).chat.completions.create(model="swap", **ask).choices[0].message.content == \
        "[Intent: Fraud Report]"  # type: ignore[call-overload]
    engine.library.remove("swap")
    engine.library.add(adapter_library / "access", "swap", engine.fingerprint)
    assert client(url).chat.completions.create(model="swap", **ask).choices[0].message.content == \
        "[Intent: Account Access]"  # type: ignore[call-overload]
    engine.library.remove("swap")
    pickled = root / "pickled"
    pickled.mkdir()
    shutil.copy(adapter_library / "fraud" / "adapter_config.json", pickled)
    (pickled / "adapter_model.bin").write_bytes(b"not loaded")
    refused = httpx.post(f"{url}/v1/admin/adapters", headers=admin, json={"name": "p", "path": str(pickled)})
    assert refused.status_code == 400 and "pickle" in refused.json()["error"]["message"]
    for name in ("../x", "a/b", ".."):
        bad = httpx.post(f"{url}/v1/admin/adapters", headers=admin, json={"name": name, "path": str(pickled)})
        assert bad.status_code == 400


def test_other_base_and_escaping_entries_are_refused(served: tuple[str, Engine, FeedbackStore, Path],
                                                       tmp_path: Path) -> None:
    url, engine, _, _ = served
    library = engine.library.root
    shutil.copytree(library / "access", library / "foreign")
    manifest = json.loads((library / "foreign" / ADAPTER_MANIFEST).read_text())
    (library / "foreign" / ADAPTER_MANIFEST).write_text(json.dumps({**manifest, "base_fingerprint": "0" * 16}))
    outside = tmp_path / "outside"
    shutil.copytree(library / "access", outside)
    (library / "escape").symlink_to(outside, target_is_directory=True)
    hi = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError, match="another base model"):
        client(url).chat.completions.create(model="foreign", messages=hi)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client(url).chat.completions.create(model="escape", messages=hi)  # type: ignore[arg-type]
    assert "escape" not in [m.id for m in client(url).models.list().data]
    shutil.rmtree(library / "foreign")
    (library / "escape").unlink()
