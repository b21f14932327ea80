"""The endpoint candidate and the judge speak OpenAI-compatible HTTP: checked against tunewright's own
server (create_app + uvicorn on a random port), and against a wrong key and a closed port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tunewright.config import JudgeConfig
from tunewright.evaluate.endpoint import EndpointError, api_key, chat_completion
from tunewright.evaluate.judge import judge_answers, parse_verdict

KEY = "eval-test-key"


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, serve_app: Any) -> Iterator[str]:
    from tunewright.library import AdapterLibrary
    from tunewright.serve.app import create_app
    from tunewright.serve.engine import Engine

    engine = Engine("base", tiny_model_dir, AdapterLibrary(tmp_path_factory.mktemp("library")))
    with serve_app(create_app(engine, {KEY})) as url:
        yield f"{url}/v1"


def test_endpoint_answers_through_a_real_server(server: str) -> None:
    reply = chat_completion(server, "base", KEY, [{"role": "user", "content": "hello"}], max_tokens=5)
    again = chat_completion(server, "base", KEY, [{"role": "user", "content": "hello"}], max_tokens=5)
    assert isinstance(reply, str) and reply == again  # temperature 0: the same answer twice


def test_wrong_key_and_closed_port_are_one_clear_error(server: str) -> None:
    with pytest.raises(EndpointError, match="HTTP 401"):
        chat_completion(server, "base", "wrong", [{"role": "user", "content": "hi"}], max_tokens=3)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(EndpointError, match="cannot connect"):
        chat_completion(f"http://127.0.0.1:{closed}/v1", "base", None, [{"role": "user", "content": "hi"}], 3)


def test_missing_key_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TW_TEST_KEY", raising=False)
    with pytest.raises(EndpointError, match="TW_TEST_KEY"):
        api_key("TW_TEST_KEY")


def test_judge_verdicts_and_parse_failures_are_counted(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_verdict("Reasoning... VERDICT: PASS") is True
    assert parse_verdict("verdict: fail\n") is False
    assert parse_verdict("I think it is fine.") is None
    monkeypatch.setenv("TW_JUDGE_KEY", KEY)
    config = JudgeConfig(base_url=server, model="base", api_key_env="TW_JUDGE_KEY", rubric="polite", max_rows=2)
    verdicts, failures = judge_answers(config, [("q", "r", "a")] * 3)
    assert len(verdicts) == 3 and verdicts[2] is None  # beyond max_rows: not judged
    # The tiny random model never writes a verdict line: both judged answers are parse failures, counted.
    assert failures == 2 and verdicts[:2] == [None, None]
