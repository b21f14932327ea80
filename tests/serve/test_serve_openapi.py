"""The live API schema: /openapi.json is served behind the API key and documents every error status of
each route, the max_tokens limit and that /metrics is Prometheus text."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx

from tunewright.library import AdapterLibrary
from tunewright.serve.app import create_app
from tunewright.serve.completions import Limits
from tunewright.serve.engine import Engine

KEY = "test-key"
Running = Callable[[object], AbstractContextManager[str]]


def test_openapi_is_served_behind_the_key_and_documents_errors(tiny_model_dir: Path, adapter_library: Path,
                                                               serve_app: Running) -> None:
    engine = Engine("base", tiny_model_dir, AdapterLibrary(adapter_library))
    with serve_app(create_app(engine, {KEY}, Limits(max_tokens=77), admin_keys={"a"})) as url:
        assert httpx.get(f"{url}/openapi.json").status_code == 401
        assert httpx.get(f"{url}/docs").status_code == 404
        schema = httpx.get(f"{url}/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()
    paths = schema["paths"]
    assert "/openapi.json" not in paths and "/health" in paths
    for route in ("/v1/chat/completions", "/v1/completions"):
        operation = paths[route]["post"]
        assert {"200", "400", "401", "404", "413", "422", "429"} <= set(operation["responses"])
        assert "77" in operation["description"]
        assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
        error = operation["responses"]["429"]["content"]["application/json"]["schema"]["$ref"]
        assert error.endswith("/ErrorBody")
    assert set(schema["components"]["schemas"]["ErrorDetail"]["properties"]) == {"message", "type", "param", "code"}
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert paths["/v1/admin/adapters"]["post"]["responses"].keys() >= {"201", "400", "401"}
    assert "/v1/feedback" in paths and "/v1/models" in paths
