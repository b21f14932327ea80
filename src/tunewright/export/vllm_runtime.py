"""`--verify` for vLLM: start the server exactly as `export --format vllm` wrote it (its argv, with the
python of vLLM's own environment), on a free local port, and ask it as a client that read the client
card asks: the adapter's name as `model`, the task's system prompt as the first message, greedy. Never
imports torch or vLLM; the server runs in its own process group and is stopped however this ends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tunewright.errors import ModelError

Chat = list[dict[str, str]]
START_TIMEOUT_S = 900.0  # loading a model and profiling the KV cache on a 2-core CPU takes minutes
REQUEST_TIMEOUT_S = 300.0
LOG_LINES_SHOWN = 3


def vllm_answers(plan_file: Path, adapter: str, chats: list[Chat], max_tokens: int,
                 python: Path) -> tuple[str, list[str]]:
    """Each chat answered by `adapter` on the server that `plan_file` (vllm.json) launches."""
    plan = json.loads(plan_file.read_text(encoding="utf-8"))
    clients = {client["model"]: client for client in plan["clients"]}
    if adapter not in clients:
        raise ModelError(f"{plan_file}: vLLM does not serve adapter {adapter!r} (served: "
                         f"{', '.join(clients) or 'none'}); see the export's warnings")
    with vllm_server(plan["argv"][1:], python) as url:
        version = str(get_json(f"{url}/version")["version"])
        system_prompt = str(clients[adapter]["system_prompt"])
        answers = [chat_answer(url, adapter, client_messages(system_prompt, chat), max_tokens) for chat in chats]
    return f"vllm {version}", answers


def client_messages(system_prompt: str, chat: Chat) -> Chat:
    """What the client card says to send: the task's system prompt first, unless the chat has one."""
    if not system_prompt or (chat and chat[0]["role"] == "system"):
        return list(chat)
    return [{"role": "system", "content": system_prompt}, *chat]


def chat_answer(url: str, model: str, messages: Chat, max_tokens: int) -> str:
    reply = post_json(f"{url}/v1/chat/completions", {"model": model, "messages": messages, "temperature": 0,
                                                     "max_tokens": max_tokens})
    return str(reply["choices"][0]["message"]["content"] or "").strip()


@contextmanager
def vllm_server(args: list[str], python: Path) -> Iterator[str]:
    """A vLLM server started with `python args --host 127.0.0.1 --port FREE`; yields its base URL once
    it answers /health, and stops the whole process group (API server, engine, workers) afterwards."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tunewright-vllm-") as scratch:
        log_path = Path(scratch) / "vllm.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([str(python), *args, "--host", "127.0.0.1", "--port", str(port)],
                                       stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_until_up(url, process, log_path)
                yield url
            finally:
                stop(process)


def wait_until_up(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ModelError(f"vLLM exited with code {process.returncode} before serving: {log_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(2)
    raise ModelError(f"vLLM did not answer /health within {START_TIMEOUT_S:.0f} s: {log_tail(log_path)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, then SIGKILL to whatever of it (engine, workers) is left."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def log_tail(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(lines[-LOG_LINES_SHOWN:]) or "no output"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:
        return dict(json.load(response))


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as exc:
        raise ModelError(f"vLLM answered {exc.code} to {url}: {exc.read().decode(errors='replace')[:300]}") from None
