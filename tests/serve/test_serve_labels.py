"""A labelled adapter (its manifest carries the task's labels and where the label sits, as training
writes them) answers with a label from that set even when it learned another one, and with `logprobs`
the label's probability is the product of its tokens' probabilities under the constraint."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import openai

from tunewright.library import AdapterLibrary, base_fingerprint
from tunewright.runs import ADAPTER_MANIFEST
from tunewright.serve.app import create_app
from tunewright.serve.completions import Limits
from tunewright.serve.engine import Engine

KEY = "test-key"
LABELS = ["Fraud Report", "Card Lost"]  # "access" learned "[Intent: Account Access]", which is not here
Running = Callable[[object], AbstractContextManager[str]]


def test_labelled_adapter_answers_within_its_label_set(tiny_model_dir: Path, adapter_library: Path,
                                                       serve_app: Running, tmp_path: Path) -> None:
    source = tmp_path / "labelled-source"
    shutil.copytree(adapter_library / "access", source)
    manifest = json.loads((source / ADAPTER_MANIFEST).read_text())
    manifest.update(labels=LABELS, label_format={"before": "[Intent: ", "after": "]", "label_only": False})
    (source / ADAPTER_MANIFEST).write_text(json.dumps(manifest))
    library = AdapterLibrary(tmp_path / "library")
    fingerprint = base_fingerprint(tiny_model_dir)
    library.add(adapter_library / "access", "access", fingerprint)
    library.add(source, "labelled", fingerprint)
    engine = Engine("base", tiny_model_dir, library)
    with serve_app(create_app(engine, {KEY}, Limits(max_tokens=16))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)
        ask = [{"role": "user", "content": "I cannot log in to the app"}]
        free = client.chat.completions.create(model="access", messages=ask, max_tokens=16)  # type: ignore[arg-type]
        assert free.choices[0].message.content == "[Intent: Account Access]"
        constrained = client.chat.completions.create(model="labelled", messages=ask, max_tokens=16,  # type: ignore[arg-type]
                                                     logprobs=True, top_logprobs=2)
        sampled = [client.chat.completions.create(model="labelled", messages=ask, max_tokens=16, temperature=2,  # type: ignore[arg-type]
                                                  seed=seed).choices[0].message.content for seed in range(4)]
    answer = constrained.choices[0].message.content or ""
    assert any(answer.startswith(f"[Intent: {label}]") for label in LABELS), answer
    assert all(any((text or "").startswith(f"[Intent: {label}]") for label in LABELS) for text in sampled), sampled
    content = constrained.choices[0].logprobs.content  # type: ignore[union-attr]
    spelled, label_logprob = "", 0.0
    for entry in content:
        if spelled.endswith("]"):
            break
        spelled += entry.token
        label_logprob += entry.logprob
        if entry.token.strip() and "[Intent:".startswith(spelled.strip()):
            assert entry.logprob == 0.0  # the shared prefix is the only spelling allowed: probability 1
    assert 0 < math.exp(label_logprob) <= 1 and spelled.strip() == answer[:len(spelled.strip())]
