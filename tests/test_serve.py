"""The real server under uvicorn on 127.0.0.1, driven with the official openai client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from tunewright.chat import with_system_prompt
from tunewright.config import load_config
from tunewright.errors import ModelError
from tunewright.evaluate.generate import generate_replies
from tunewright.modeling import load_model, load_tokenizer, load_with_adapter
from tunewright.pipeline import prepare_run
from tunewright.records import Message
from tunewright.runs import RunPaths
from tunewright.serve.app import create_app
from tunewright.serve.engine import Engine, read_adapter
from tunewright.train import train_run

ProjectFactory = Callable[[Path, int], Path]
KEY = "test-key"
QUESTION = "I cannot log in to the app since yesterday"


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, make_project: ProjectFactory
) -> Iterator[tuple[str, Path, str]]:
    root = tmp_path_factory.mktemp("serve")
    project = make_project(root, 60)
    config = load_config(project, ["training.max_steps=3", "training.learning_rate=0.05"])
    run = RunPaths(root / "run")
    prepare_run(config, run, announce=lambda message: None)
    train_run(config, run, show_progress=False)
    engine = Engine("base", tiny_model_dir, [read_adapter("support", run.root)])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine, {KEY}, 64), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", run.adapter, config.task.system_prompt
    server.should_exit = True
    thread.join(timeout=10)


def test_each_model_answers_as_it_would_locally(served: tuple[str, Path, str], tiny_model_dir: Path) -> None:
    url, adapter_dir, system_prompt = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY)
    assert [m.id for m in client.models.list().data] == ["base", "support"]
    tokenizer = load_tokenizer(tiny_model_dir)
    local = {
        "base": (load_model(tiny_model_dir), []),
        "support": (load_with_adapter(tiny_model_dir, adapter_dir), [Message("system", system_prompt)]),
    }
    answers = {}
    for name, (model, system) in local.items():
        response = client.chat.completions.create(model=name, max_tokens=12,
                                                  messages=[{"role": "user", "content": QUESTION}])
        chat = with_system_prompt([*system, Message("user", QUESTION)], "")
        expected = generate_replies(model, tokenizer, [chat], 12, 1)[0]
        assert response.choices[0].message.content == expected.text
        assert response.usage is not None and response.usage.completion_tokens == expected.completion_tokens
        assert response.choices[0].finish_reason in {"stop", "length"}
        answers[name] = response.choices[0].message.content
    assert answers["base"] != answers["support"]


def test_errors_are_openai_shaped(served: tuple[str, Path, str]) -> None:
    url = served[0]
    assert httpx.get(f"{url}/health").status_code == 200
    unauthorised = httpx.get(f"{url}/v1/models")
    assert unauthorised.status_code == 401 and unauthorised.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="base", max_tokens=10_000,
                                       messages=[{"role": "user", "content": "hi"}])
    invalid = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                         json={"model": "base", "messages": [{"role": "robot", "content": "hi"}]})
    assert invalid.status_code == 422 and invalid.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("name", ["../evil", "/abs", "a/b", "..", ""])
def test_adapter_names_cannot_escape(name: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        read_adapter(name, tmp_path)
