"""The deploy commands end to end: `adapters add|list|remove`, `serve` as a real process with keys from
TUNEWRIGHT_API_KEYS, and `feedback export` of what it logged."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

from tunewright.runs import ADAPTER_MANIFEST


def tunewright(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tunewright", *args], capture_output=True, text=True,
                          env=env, check=False, timeout=300)


def test_adapters_serve_and_feedback_export(tiny_model_dir: Path, adapter_library: Path, tmp_path: Path) -> None:
    library = tmp_path / "library"
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    for file in (adapter_library / "fraud").iterdir():
        (run / "adapter" / file.name).write_bytes(file.read_bytes())
    training = {"steps": 12, "planned_steps": 12, "best_val_loss": None, "best_step": None, "stopped_early": False,
                "overfitting_alert": False, "train_tokens": 600, "train_tokens_per_second": 50.0, "seconds": 12.0,
                "precision": "fp32", "trainable_parameters": 100, "total_parameters": 1000}
    (run / "summary.json").write_text(json.dumps({
        "decision": "go", "decision_reasons": [], "task": "memorise", "base_model": str(tiny_model_dir),
        "method": "lora", "data": {"train": 6, "val": 0, "test": 6}, "training": training, "artifacts": {},
        "eval": {"test_rows": 6, "best_baseline": "zero_shot", "gate": {}, "candidates": {}}}))
    added = tunewright("adapters", "add", str(run), "--name", "fraud", "--library", str(library))
    assert added.returncode == 0, added.stderr
    manifest = json.loads((library / "fraud" / ADAPTER_MANIFEST).read_text())
    assert manifest["eval_summary"]["decision"] == "go" and len(manifest["base_fingerprint"]) == 16
    assert tunewright("adapters", "add", str(run), "--name", "../up", "--library", str(library)).returncode == 2
    listed = tunewright("adapters", "list", "--library", str(library))
    assert "fraud" in listed.stdout and "go" in listed.stdout

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = tmp_path / "feedback.db"
    env = {**os.environ, "TUNEWRIGHT_API_KEYS": "k1,k2"}
    server = subprocess.Popen([sys.executable, "-m", "tunewright", "serve", "--base", str(tiny_model_dir),
                               "--adapters", str(library), "--host", "127.0.0.1", "--port", str(port),
                               "--feedback-db", str(db), "--max-tokens", "16"], env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k2", max_retries=0)
        reply = client.chat.completions.create(model="fraud", messages=[{"role": "user", "content": "help"}])
        assert reply.choices[0].message.content == "[Intent: Fraud Report]"
        sent = httpx.post(f"http://127.0.0.1:{port}/v1/feedback", headers={"Authorization": "Bearer k1"},
                          json={"response_id": reply.id, "rating": 0, "correction": "[Intent: General Inquiry]"})
        assert sent.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    out = tmp_path / "next.jsonl"
    exported = tunewright("feedback", "export", "--db", str(db), "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["messages"] == [{"role": "user", "content": "help"},
                               {"role": "assistant", "content": "[Intent: General Inquiry]"}]
    assert tunewright("adapters", "remove", "fraud", "--library", str(library)).returncode == 0
    assert not (library / "fraud").exists()
