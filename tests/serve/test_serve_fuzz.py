"""schemathesis against the live /openapi.json of a real uvicorn server: bounded examples for every
route, none answered with a 5xx, every status one the schema documents for that route, and every error
in the OpenAI error shape."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tunewright.library import AdapterLibrary
from tunewright.serve.app import create_app
from tunewright.serve.completions import Limits
from tunewright.serve.engine import Engine

KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
Running = Callable[[object], AbstractContextManager[str]]
pytestmark = pytest.mark.fuzz
EXAMPLES = 25  # per route


@pytest.fixture(scope="module")
def fuzz_url(tiny_model_dir: Path, adapter_library: Path, serve_app: Running,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    library = tmp_path_factory.mktemp("fuzz") / "library"
    shutil.copytree(adapter_library, library)  # the admin routes may remove adapters
    engine = Engine("base", tiny_model_dir, AdapterLibrary(library))
    limits = Limits(max_tokens=4, max_prompt_tokens=64, max_body_bytes=8192)
    with serve_app(create_app(engine, {KEY}, limits, admin_keys={KEY})) as url:
        yield url


def test_no_server_errors_and_documented_statuses(fuzz_url: str) -> None:
    # Operations are walked here rather than through schemathesis' pytest plugin, which does not run
    # under pytest 9 (it reads a private attribute pytest removed).
    raw = httpx.get(f"{fuzz_url}/openapi.json", headers=AUTH, timeout=30).json()
    bodies = raw["components"]["schemas"]
    for body in ("ChatCompletionRequest", "CompletionRequest"):  # served names, so requests reach generation
        bodies[body]["properties"]["model"] = {"enum": ["base", "access"]}
    for body in ("ChatCompletionRequest", "CompletionRequest", "ChatMessage", "TextPart"):
        bodies[body]["additionalProperties"] = False  # unknown keys are refused (test_serve_params.py)
    operations = [result.ok() for result in schemathesis.openapi.from_dict(raw).get_all_operations()]
    assert {operation.path for operation in operations} >= {"/v1/chat/completions", "/v1/completions"}
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        fuzz(operation, fuzz_url, statuses.setdefault(f"{operation.method.upper()} {operation.path}", set()))
    print(sorted((route, sorted(codes)) for route, codes in statuses.items()))
    assert 200 in statuses["POST /v1/completions"]  # random sampling parameters reached generation


def fuzz(operation: Any, url: str, seen: set[int]) -> None:
    """EXAMPLES requests generated from one operation's schema; collects the statuses into `seen`."""
    documented = set(operation.definition.raw["responses"])

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def check(case: Any) -> None:
        response = case.call(base_url=url, headers=AUTH, timeout=30)
        status = response.status_code
        where = (case.method, case.path, status, response.text[:300])
        assert status < 500 and str(status) in documented, where
        if status >= 400:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}, where
        seen.add(status)

    check()
