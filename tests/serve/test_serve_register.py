"""Adapters are verified before they serve: the admin route refuses symlinks out of the source folder,
relative paths, another base's LoRA, a tampered rank, truncated or non-finite weights (the last found by
really loading it in a worker), leaving no entry behind; unregistering an adapter fails only the
requests still queued for it."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

from tunewright.errors import ModelError
from tunewright.library import WEIGHTS, AdapterLibrary
from tunewright.runs import ADAPTER_MANIFEST
from tunewright.serve.adapter_check import verify_loads
from tunewright.serve.app import create_app
from tunewright.serve.completions import Limits
from tunewright.serve.engine import Engine
from tunewright.serve.scheduler import Scheduler

KEY, ADMIN = "test-key", "admin-key"
AUTH, ADMIN_AUTH = {"Authorization": f"Bearer {KEY}"}, {"Authorization": f"Bearer {ADMIN}"}
HI = [{"role": "user", "content": "I cannot log in to the app"}]
Running = Callable[[object], AbstractContextManager[str]]


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path, adapter_library: Path, serve_app: Running,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine, Scheduler]]:
    root = tmp_path_factory.mktemp("register")
    shutil.copytree(adapter_library, root / "library")
    engine = Engine("base", tiny_model_dir, AdapterLibrary(root / "library"))
    app = create_app(engine, {KEY}, Limits(max_tokens=12, gather_ms=20), admin_keys={ADMIN})
    with serve_app(app) as url:
        yield url, engine, app.state.server.scheduler


def _copy(adapter_library: Path, tmp_path: Path, name: str = "source") -> Path:
    source = tmp_path / name
    shutil.copytree(adapter_library / "access", source)
    return source


def _other_base_lora(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A LoRA for a wider model, whose manifest claims the served base."""
    config = LlamaConfig.from_pretrained(tiny_model_dir)
    config.hidden_size, config.intermediate_size = 32, 64
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=8, target_modules="all-linear"))
    model.save_pretrained(tmp_path / "other", safe_serialization=True)
    (tmp_path / "other" / ADAPTER_MANIFEST).write_text(json.dumps({"base_model": str(tiny_model_dir)}))
    return tmp_path / "other"


def _cases(adapter_library: Path, tiny_model_dir: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (source folder, what the refusal must say)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    weights_link = _copy(adapter_library, tmp_path, "weights-link")
    (weights_link / WEIGHTS).unlink()
    (weights_link / WEIGHTS).symlink_to(secret)
    tokenizer_link = _copy(adapter_library, tmp_path, "tokenizer-link")
    (tokenizer_link / "tokenizer.json").unlink()
    (tokenizer_link / "tokenizer.json").symlink_to(secret)
    rank = _copy(adapter_library, tmp_path, "rank")
    config = json.loads((rank / "adapter_config.json").read_text())
    (rank / "adapter_config.json").write_text(json.dumps({**config, "r": 4}))
    truncated = _copy(adapter_library, tmp_path, "truncated")
    data = (truncated / WEIGHTS).read_bytes()
    (truncated / WEIGHTS).write_bytes(data[: len(data) // 2])
    nan = _copy(adapter_library, tmp_path, "nan")
    tensors = load_file(nan / WEIGHTS)
    save_file({name: torch.full_like(t, float("nan")) if "lora_B" in name else t for name, t in tensors.items()},
              nan / WEIGHTS)
    return {"weights-link": (weights_link, "outside the adapter folder"),
            "tokenizer-link": (tokenizer_link, "outside the adapter folder"),
            "other-base": (_other_base_lora(tiny_model_dir, tmp_path), "another base model"),
            "rank": (rank, "r=4"), "truncated": (truncated, "truncated"), "nan": (nan, "non-finite")}


def test_bad_adapters_are_refused_and_leave_nothing_behind(served: tuple[str, Engine, Scheduler],
                                                            adapter_library: Path, tiny_model_dir: Path,
                                                            tmp_path: Path) -> None:
    url, engine, _ = served
    for name, (source, why) in _cases(adapter_library, tiny_model_dir, tmp_path).items():
        refused = httpx.post(f"{url}/v1/admin/adapters", headers=ADMIN_AUTH, timeout=180,
                             json={"name": name, "path": str(source)})
        assert refused.status_code == 400 and why in refused.json()["error"]["message"], (name, refused.text)
        assert name not in engine.library and not (engine.library.root / name).exists()
    relative = httpx.post(f"{url}/v1/admin/adapters", headers=ADMIN_AUTH, json={"name": "rel", "path": "runs/x"})
    assert relative.status_code == 400 and "absolute" in relative.json()["error"]["message"]
    assert not [p for p in engine.library.root.iterdir() if p.name.startswith(".")]  # no half-copied folder
    good = httpx.post(f"{url}/v1/admin/adapters", headers=ADMIN_AUTH, timeout=180,
                      json={"name": "good", "path": str(_copy(adapter_library, tmp_path))})
    assert good.status_code == 201
    for model in ("good", "base", "fraud"):
        answer = httpx.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=60,
                            json={"model": model, "messages": HI, "max_tokens": 12})
        assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "[Intent: Fraud Report]"


def test_a_load_that_hangs_is_cut_off(tiny_model_dir: Path, adapter_library: Path) -> None:
    with pytest.raises(ModelError, match="did not finish within"):
        verify_loads(tiny_model_dir, adapter_library / "access", timeout_s=0.05)


def test_unregistering_fails_only_the_requests_queued_for_it(served: tuple[str, Engine, Scheduler],
                                                              adapter_library: Path, tmp_path: Path) -> None:
    url, _, scheduler = served
    assert httpx.post(f"{url}/v1/admin/adapters", headers=ADMIN_AUTH, timeout=180,
                      json={"name": "doomed", "path": str(_copy(adapter_library, tmp_path))}).status_code == 201
    statuses: dict[int, int] = {}

    def ask(index: int, model: str) -> None:
        reply = httpx.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=120,
                           json={"model": model, "messages": HI, "max_tokens": 12})
        statuses[index] = reply.status_code

    scheduler._executor.submit(time.sleep, 2.0)  # the engine thread is busy with an earlier batch
    first = threading.Thread(target=ask, args=(0, "base"))
    first.start()
    _wait(lambda: scheduler.running == 1)  # that request's batch waits for the engine
    models = ["doomed", "base", "doomed", "fraud", "doomed", "access"]
    threads = [threading.Thread(target=ask, args=(i + 1, m)) for i, m in enumerate(models)]
    for thread in threads:
        thread.start()
    _wait(lambda: len(scheduler.waiting) == len(models))  # queued behind it
    deleted = httpx.delete(f"{url}/v1/admin/adapters/doomed", headers=ADMIN_AUTH, timeout=120)
    for thread in [first, *threads]:
        thread.join(timeout=120)
    assert deleted.status_code == 200
    assert statuses == {0: 200, **{i + 1: 404 if m == "doomed" else 200 for i, m in enumerate(models)}}


def _wait(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)
