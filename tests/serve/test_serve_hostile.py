"""Hostile bodies on the real server: lone surrogates are a 4xx in the OpenAI error shape, a chunked body
is refused at the limit without being buffered, and booleans and integers are strictly typed."""

from __future__ import annotations

import resource
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from tunewright.library import AdapterLibrary
from tunewright.serve.app import create_app
from tunewright.serve.completions import Limits
from tunewright.serve.engine import Engine

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
Running = Callable[[object], AbstractContextManager[str]]


@pytest.fixture(scope="module")
def url(tiny_model_dir: Path, adapter_library: Path, serve_app: Running) -> Iterator[str]:
    engine = Engine("base", tiny_model_dir, AdapterLibrary(adapter_library))
    with serve_app(create_app(engine, {KEY}, Limits(max_tokens=4, max_body_bytes=20_000), admin_keys={"a"})) as base:
        yield base


def _post(url: str, path: str, raw: str, headers: dict[str, str] = AUTH) -> httpx.Response:
    return httpx.post(f"{url}{path}", content=raw.encode(), headers=headers, timeout=60)


@pytest.mark.parametrize("raw", [
    '{"model": "base", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
    '{"model": "base", "messages": [{"role": "user", "content": "\\udfff"}], "stream": true}',
    '{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}',
])
def test_lone_surrogates_are_a_4xx(url: str, raw: str) -> None:
    response = _post(url, "/v1/chat/completions", raw)
    assert response.status_code == 422 and "surrogate" in response.json()["error"]["message"]
    completion = _post(url, "/v1/completions", '{"model": "access", "prompt": "\\ud83d"}')
    assert completion.status_code == 422 and completion.json()["error"]["param"] == "prompt"
    whole = raw.replace('"\\ud800"', '"base"').replace("\\ud800", "x").replace("\\udfff", "x")
    assert _post(url, "/v1/chat/completions", whole).status_code == 200


@pytest.mark.parametrize(("field", "value"), [("stream", '"yes"'), ("stream", "1"), ("max_tokens", "true"),
                                              ("max_tokens", '"3"'), ("max_tokens", "2.0")])
def test_booleans_and_integers_are_strict(url: str, field: str, value: str) -> None:
    raw = f'{{"model": "base", "messages": [{{"role": "user", "content": "hi"}}], "{field}": {value}}}'
    response = _post(url, "/v1/chat/completions", raw)
    assert response.status_code == 422 and response.json()["error"]["param"] == field
    feedback = _post(url, "/v1/feedback", '{"response_id": "x", "rating": true}')
    assert feedback.status_code == 422 and feedback.json()["error"]["param"] == "rating"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the server runs in this process


@pytest.mark.parametrize("headers", [{}, AUTH], ids=["no-key", "key"])
def test_a_chunked_body_is_refused_at_the_limit_without_buffering(url: str, headers: dict[str, str]) -> None:
    sent = 0

    def body() -> Iterator[bytes]:  # no Content-Length: chunked transfer, 256 MiB if nobody stops it
        nonlocal sent
        chunk = b'{"model": "base", "prompt": "' + b"x" * (1 << 20)
        for _ in range(256):
            sent += len(chunk)
            yield chunk

    before = _peak_rss_mib()
    try:
        response = httpx.post(f"{url}/v1/completions", content=body(), headers=headers, timeout=60)
    except (httpx.RemoteProtocolError, httpx.WriteError):
        response = None  # the server answered and closed while the client was still sending
    assert sent < 64 << 20  # it stopped reading long before the end
    assert _peak_rss_mib() - before < 48
    if response is not None:
        assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    small = httpx.post(f"{url}/v1/completions", headers=AUTH, timeout=60,
                       content=iter([b'{"model": "base", ', b'"prompt": "hi", "max_tokens": 2}']))
    assert small.status_code == 200  # a chunked body under the limit is served
