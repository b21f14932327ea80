"""Hostile request bodies: JSON nested thousands of levels deep is a 400 in the OpenAI error shape on
every JSON route (FastAPI turns the parser's RecursionError into one), and the server keeps answering."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from tunewright.library import AdapterLibrary
from tunewright.serve.app import create_app
from tunewright.serve.engine import Engine

KEY, ADMIN = "test-key", "admin-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(("path", "key"), [("/v1/chat/completions", KEY), ("/v1/completions", KEY),
                                           ("/v1/feedback", KEY), ("/v1/admin/adapters", ADMIN)])
def test_deeply_nested_body_is_a_400(path: str, key: str, tiny_model_dir: Path, tmp_path: Path,
                                     serve_app: Callable[[object], AbstractContextManager[str]]) -> None:
    engine = Engine("base", tiny_model_dir, AdapterLibrary(tmp_path))
    with serve_app(create_app(engine, {KEY}, admin_keys={ADMIN})) as url:
        body = '{"model": "base", "messages": ' + DEEP + "}"
        answer = httpx.post(f"{url}{path}", content=body, headers={"Authorization": f"Bearer {key}",
                                                                    "Content-Type": "application/json"})
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
        assert httpx.get(f"{url}/health").status_code == 200
