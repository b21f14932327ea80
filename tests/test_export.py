"""GGUF export read back (tensor names, shapes, tokenizer metadata with llama.cpp's pre-tokenizer, the
task's system prompt in the chat template, and the same logits once transformers loads it) with its
Ollama Modelfile and card, and the vLLM launch line for an adapter library with its client card and
warnings for adapters vLLM refuses. Tests marked `runtime` load the GGUF in llama.cpp itself, and
start vLLM from the exported line, and compare their answers with tunewright's."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import IA3Config, LoraConfig, get_peft_model

from tunewright.config import Config, load_config
from tunewright.errors import ModelError
from tunewright.export import export_gguf, export_vllm
from tunewright.export.gguf_tokenizer import pre_tokenizer
from tunewright.export.verify import (
    LLAMA_CPP_PYTHON,
    VLLM_PYTHON,
    compare,
    llama_cpp_answers,
    reference_answers,
    visible,
)
from tunewright.export.vllm_runtime import client_messages, vllm_server
from tunewright.library import AdapterLibrary, base_fingerprint
from tunewright.merge import merge_adapter
from tunewright.modeling import PACKAGED_MODEL, load_model, load_tokenizer, resolve_base_model
from tunewright.pipeline import prepare_run
from tunewright.runs import ADAPTER_MANIFEST, RunPaths


def runtime_python(variable: str, module: str) -> Path | None:
    """The python of a runtime's own environment, named by `variable`, if `module` is installed there."""
    python = os.environ.get(variable)
    if not python or not Path(python).is_file():
        return None
    probe = f"import importlib.util, sys; sys.exit(not importlib.util.find_spec({module!r}))"
    found = subprocess.run([python, "-c", probe], capture_output=True, check=False)
    return Path(python) if found.returncode == 0 else None


LLAMA = runtime_python(LLAMA_CPP_PYTHON, "llama_cpp")
VLLM = runtime_python(VLLM_PYTHON, "vllm")
# The runtime tier: runs where the runtime is installed (`make runtimes`), skips elsewhere.
needs_llama_cpp = pytest.mark.skipif(LLAMA is None, reason=f"llama-cpp-python not installed ({LLAMA_CPP_PYTHON})")
needs_vllm = pytest.mark.skipif(VLLM is None, reason=f"vLLM not installed ({VLLM_PYTHON} names no python with vllm)")


def save_adapter(base: Path, peft_config: object, out: Path, system_prompt: str = "Label the message.") -> Path:
    torch.manual_seed(0)
    get_peft_model(load_model(base), peft_config).save_pretrained(out, safe_serialization=True)  # type: ignore[arg-type]
    load_tokenizer(base).save_pretrained(out)
    (out / ADAPTER_MANIFEST).write_text(json.dumps({"base_model": str(base), "method": "lora", "task": "t",
                                                    "system_prompt": system_prompt}))
    return out


@pytest.fixture(scope="module")
def lora_run(make_project: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, RunPaths]:
    root = tmp_path_factory.mktemp("export")
    config = load_config(make_project(root, 120))  # type: ignore[operator]
    run = RunPaths(root / "run")
    prepare_run(config, run, announce=lambda message: None)
    save_adapter(Path(config.model.base), LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False),
                 run.adapter)
    return config, run


def test_gguf_reads_back_with_names_shapes_tokenizer_and_logits(lora_run: tuple[Config, RunPaths],
                                                                 tmp_path: Path) -> None:
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config, run = lora_run
    result = export_gguf(config, run, tmp_path / "model.gguf", half=False, pre="gpt-2")
    out = result.path
    reader = gguf.GGUFReader(out)
    shapes = {tensor.name: tuple(int(n) for n in tensor.shape) for tensor in reader.tensors}
    hidden = load_model(Path(config.model.base)).config.hidden_size
    tokenizer = load_tokenizer(run.adapter)
    assert shapes["token_embd.weight"] == (hidden, len(tokenizer))  # GGUF lists dimensions innermost first
    assert {"blk.0.attn_q.weight", "blk.1.ffn_down.weight", "output_norm.weight"} <= shapes.keys()
    fields = reader.fields
    tokens = fields["tokenizer.ggml.tokens"]
    assert len(tokens.data) == len(tokenizer)
    assert fields["tokenizer.ggml.eos_token_id"].parts[-1][0] == tokenizer.eos_token_id
    template = bytes(fields["tokenizer.chat_template"].parts[-1]).decode()
    assert json.dumps(config.task.system_prompt) in template and template.endswith(tokenizer.chat_template)
    assert bytes(fields["tokenizer.ggml.pre"].parts[-1]).decode() == "gpt-2"
    assert bytes(fields["general.architecture"].parts[-1]).decode() == "llama"
    # transformers reads GGUF too: the file must hold the merged model, q/k permutation included
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=out.name, dtype=torch.float32)
    merged = load_model(merge_adapter(config, run, tmp_path / "merged").path)
    ids = torch.tensor([[3, 7, 11, 13, 17]])
    with torch.inference_mode():
        assert torch.allclose(loaded(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)
    gguf_tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file=out.name)
    assert gguf_tokenizer("I cannot log in")["input_ids"] == tokenizer("I cannot log in")["input_ids"]


def test_gguf_default_is_f16(lora_run: tuple[Config, RunPaths], tmp_path: Path) -> None:
    import gguf

    reader = gguf.GGUFReader(export_gguf(*lora_run, tmp_path / "model.gguf", pre="gpt-2").path)
    types = {tensor.name: tensor.tensor_type for tensor in reader.tensors}
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.F16
    assert types["output_norm.weight"] == gguf.GGMLQuantizationType.F32


def test_gguf_comes_with_a_modelfile_a_card_and_readable_modes(lora_run: tuple[Config, RunPaths],
                                                               tmp_path: Path) -> None:
    config, run = lora_run
    old = os.umask(0o077)
    try:
        result = export_gguf(config, run, tmp_path / "support.gguf", pre="gpt-2")
    finally:
        os.umask(old)
    assert result.modelfile == tmp_path / "support.Modelfile" and result.card == tmp_path / "support.md"
    modelfile = result.modelfile.read_text()
    assert modelfile.startswith("FROM ./support.gguf\n") and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert f'SYSTEM """{config.task.system_prompt}"""' in modelfile and "{{ .Content }}<|im_end|>" in modelfile
    card = result.card.read_text()
    assert "create_chat_completion" in card and "f16" in card and config.task.system_prompt.split()[0] in card
    assert {stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()} == {0o644}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["support.Modelfile", "support.gguf", "support.md"]


def test_gguf_refuses_a_tokenizer_llama_cpp_does_not_know(lora_run: tuple[Config, RunPaths], tmp_path: Path) -> None:
    # the tiny tokenizer was trained on the spot: llama.cpp's converter has no hash for it either
    with pytest.raises(ModelError, match=r"llama\.cpp does not know this tokenizer.*--gguf-pre") as caught:
        export_gguf(*lora_run, tmp_path / "model.gguf")
    assert "\n" not in str(caught.value) and list(tmp_path.iterdir()) == []
    with pytest.raises(ModelError, match=r"not a pre-tokenizer llama\.cpp knows"):
        export_gguf(*lora_run, tmp_path / "model.gguf", pre="default")


@pytest.mark.slow
def test_the_packaged_tokenizer_is_smollm_to_llama_cpp() -> None:
    model_dir = resolve_base_model(PACKAGED_MODEL)
    assert pre_tokenizer(load_tokenizer(model_dir), model_dir) == "smollm"


def test_vllm_line_for_a_library(tiny_model_dir: Path, tmp_path: Path) -> None:
    library = AdapterLibrary(tmp_path / "library")
    fingerprint = base_fingerprint(tiny_model_dir)
    adapters = {
        "small": LoraConfig(r=8, target_modules=["q_proj", "v_proj"]),
        "big": LoraConfig(r=24, target_modules="all-linear"),
        "dora": LoraConfig(r=8, target_modules="all-linear", use_dora=True),
        "ia3": IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"]),
        "head": LoraConfig(r=8, target_modules=["q_proj"], modules_to_save=["lm_head"]),
    }
    for name, peft_config in adapters.items():
        library.add(save_adapter(tiny_model_dir, peft_config, tmp_path / name), name, fingerprint)
    plan = export_vllm(library.root, tmp_path / "vllm.json")
    assert plan.served == ["big", "small"] and plan.max_lora_rank == 32
    assert plan.command.startswith(f"python -m vllm.entrypoints.openai.api_server --model {tiny_model_dir} "
                                   f"--served-model-name {tiny_model_dir.name} --dtype float32 --enable-lora "
                                   "--max-lora-rank 32 --max-loras 2")
    assert f"small={library.root / 'small'}" in plan.command
    script = tmp_path / "vllm.sh"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "vllm.json").stat().st_mode) == 0o644
    assert '"${VLLM_PYTHON:-python}" -m vllm.entrypoints.openai.api_server' in script.read_text()
    card = (tmp_path / "vllm.md").read_text()
    assert "## `small` (task t)" in card and '"temperature": 0' in card and "VLLM_CPU_KVCACHE_SPACE" in card
    assert sorted(w.split("'")[1] for w in plan.warnings) == ["dora", "head", "ia3"]
    saved = json.loads((tmp_path / "vllm.json").read_text())
    assert [m["name"] for m in saved["lora_modules"]] == ["big", "small"] and saved["command"] == plan.command
    assert saved["clients"][1]["request"]["messages"][0] == {"role": "system", "content": "Label the message."}
    shutil.rmtree(library.root / "big")
    assert export_vllm(library.root, tmp_path / "vllm2.json").max_lora_rank == 8


@pytest.mark.runtime
@needs_llama_cpp
def test_gguf_f32_answers_in_llama_cpp_as_tunewright(lora_run: tuple[Config, RunPaths], tmp_path: Path) -> None:
    config, run = lora_run
    gguf = export_gguf(config, run, tmp_path / "model.gguf", half=False, pre="gpt-2").path
    reference = reference_answers(config, run, 6)
    assert LLAMA is not None
    runtime, answers = llama_cpp_answers(gguf, reference.chats, config.eval.max_new_tokens, LLAMA)
    parity = compare("gguf", runtime, "f32", reference, answers)
    assert runtime.startswith("llama-cpp-python ") and parity.total == 6
    assert parity.identical == 6 and parity.ok, parity.differences


@pytest.mark.runtime
@needs_llama_cpp
def test_export_verify_from_the_cli(lora_run: tuple[Config, RunPaths], tmp_path: Path) -> None:
    run = lora_run[1]
    done = subprocess.run([sys.executable, "-m", "tunewright", "export", str(run.root), "--format", "gguf", "--f32",
                           "--gguf-pre", "gpt-2", "-o", str(tmp_path / "m.gguf"), "--verify", "--verify-prompts", "3",
                           "--runtime-python", str(LLAMA)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "3/3 answers identical to tunewright's" in done.stdout and "llama-cpp-python" in done.stdout


def test_vllm_verify_refuses_before_writing_anything(lora_run: tuple[Config, RunPaths], tiny_model_dir: Path,
                                                     tmp_path: Path) -> None:
    run = lora_run[1]
    library = AdapterLibrary(tmp_path / "library")
    other = save_adapter(tiny_model_dir, LoraConfig(r=4, target_modules=["q_proj"]), tmp_path / "other")
    library.add(other, "other", base_fingerprint(tiny_model_dir))

    def export(*flags: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tunewright", "export", str(library.root), "--format", "vllm",
                               *flags], capture_output=True, text=True, timeout=300,
                              env={**os.environ, VLLM_PYTHON: python})

    done = export("--verify")
    assert done.returncode == 2 and "pass both --verify and --verify-run RUN" in done.stderr
    done = export("--verify", "--verify-run", str(run.root), python=str(tmp_path / "no-python"))
    assert done.returncode == 2 and f"{tmp_path / 'no-python'} does not exist" in done.stderr
    done = export("--verify", "--verify-run", str(run.root))
    assert done.returncode == 2 and "no adapter has the weights of" in done.stderr
    assert "Traceback" not in done.stderr and not (library.root / "vllm.json").exists()


def test_a_vllm_that_dies_on_start_is_one_line_with_its_last_words() -> None:
    script = "import sys; print('loading'); print('RuntimeError: operator torchvision::nms does not exist'); exit(3)"
    died = r"vLLM exited with code 3 before serving: loading \| RuntimeError: operator torchvision::nms does not exist$"
    with pytest.raises(ModelError, match=died), vllm_server(["-c", script], Path(sys.executable)):
        pass


@pytest.fixture(scope="module")
def vllm_run(make_project: object, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Config, RunPaths]:
    """The tiny model widened to a head size vLLM's CPU attention takes (32), with a LoRA that changes
    its answers, in a prepared run; its manifest carries the run's system prompt, as training writes it."""
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("vllm")
    base = root / "base"
    shape = LlamaConfig.from_pretrained(tiny_model_dir)
    shape.update({"hidden_size": 64, "intermediate_size": 128, "head_dim": 32})
    torch.manual_seed(0)
    LlamaForCausalLM(shape).save_pretrained(base)
    load_tokenizer(tiny_model_dir).save_pretrained(base)
    config_path = make_project(root, 120)  # type: ignore[operator]
    config_path.write_text(config_path.read_text().replace(str(tiny_model_dir), str(base)))
    config = load_config(config_path)
    run = RunPaths(root / "run")
    prepare_run(config, run, announce=lambda message: None)
    save_adapter(base, LoraConfig(r=8, target_modules="all-linear", init_lora_weights=False), run.adapter,
                 config.task.system_prompt)
    return config, run


@pytest.mark.runtime
@needs_vllm
def test_vllm_line_answers_as_tunewright(vllm_run: tuple[Config, RunPaths], tmp_path: Path) -> None:
    # the exported line started as it is, asked as the client card says, through the CLI's --verify
    config, run = vllm_run
    library = AdapterLibrary(tmp_path / "library")
    library.add(run.root, "support", base_fingerprint(Path(config.model.base)))
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    done = subprocess.run([sys.executable, "-m", "tunewright", "export", str(library.root), "--format", "vllm",
                           "--verify", "--verify-run", str(run.root), "--verify-prompts", "6",
                           "--runtime-python", str(VLLM)], capture_output=True, text=True, timeout=1500, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "verify: vllm in vllm " in done.stdout
    assert "6/6 answers identical to tunewright's" in done.stdout and "0/6 equal to the base model's" in done.stdout


def test_vllm_reference_is_what_tunewright_serves_for_the_library_entry(lora_run: tuple[Config, RunPaths],
                                                                         tmp_path: Path, serve_app: object) -> None:
    # lora_run's manifest says "Label the message." while its config's task has another system prompt: vLLM's
    # client card sends the manifest's, so --verify must compare with tunewright's answers to that request
    # (it compared with the config's prompt, and a correct vLLM failed 0/6 on the fixture that did this)
    from tunewright.evaluate.endpoint import chat_completion
    from tunewright.serve.app import create_app
    from tunewright.serve.engine import Engine

    config, run = lora_run
    base = Path(config.model.base)
    library = AdapterLibrary(tmp_path / "library")
    entry = library.add(run.root, "support", base_fingerprint(base))
    assert entry.system_prompt == "Label the message." != config.task.system_prompt
    reference = reference_answers(config, run, 3, entry.system_prompt)
    assert reference.answers != reference_answers(config, run, 3).answers  # the prompt changes the answers
    plan = json.loads(export_vllm(library.root, tmp_path / "vllm.json").path.read_text())
    sent = [client_messages(plan["clients"][0]["system_prompt"], chat) for chat in reference.chats]
    with serve_app(create_app(Engine("base", base, library), {"k"})) as url:  # type: ignore[operator]
        served = [chat_completion(f"{url}/v1", "support", "k", messages, max_tokens=config.eval.max_new_tokens)
                  for messages in sent]
    assert [visible(answer) for answer in served] == [visible(answer) for answer in reference.answers]
