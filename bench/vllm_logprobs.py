"""Does vLLM compute what tunewright computes? Token by token, for a run's adapter on its base: the
first N test prompts, rendered once by the adapter's chat template with the adapter's own system prompt
(the one its manifest carries, which `tunewright serve` and vLLM's client card use), are decoded
greedily by tunewright (transformers + peft, fp32) and by vLLM (its offline `LLM`, fp32, eager, the
LoRA loaded as vLLM loads it) from the same token ids, with the adapter and without. Prints, per
prompt, tunewright's top-2 logit margin at the first answer token (how far a flip would be), whether
the greedy token ids agree, and the largest difference between the two runtimes' first-step top-5
log-probabilities; writes JSON. vLLM runs from its own environment (this script re-runs itself there
with --child), so the project's venv never imports it.

    OMP_NUM_THREADS=1 VLLM_CPU_KVCACHE_SPACE=1 .venv/bin/python bench/vllm_logprobs.py RUN \\
        --vllm-python /work/rt/vllm/bin/python --prompts 6 --json bench/results/vllm_logprobs.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TOP = 5


def child(job_file: Path) -> None:
    """In vLLM's environment: greedy ids and first-step top-5 log-probabilities, LoRA on and off."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    job = json.loads(job_file.read_text())
    llm = LLM(model=job["base"], dtype="float32", enable_lora=True, max_lora_rank=job["max_lora_rank"],
              max_loras=1, enforce_eager=True, seed=0)
    params = SamplingParams(temperature=0, max_tokens=job["max_tokens"], logprobs=TOP)
    prompts = [{"prompt_token_ids": ids} for ids in job["prompts"]]
    result: dict[str, Any] = {"dtype": str(llm.llm_engine.model_config.dtype)}
    for name, lora in (("adapter", LoRARequest("adapter", 1, job["adapter"])), ("base", None)):
        outputs = llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
        result[name] = [{"ids": list(out.outputs[0].token_ids),
                         "top": {str(k): v.logprob for k, v in (out.outputs[0].logprobs or [{}])[0].items()}}
                        for out in outputs]
    print("RESULT " + json.dumps(result), flush=True)


def tunewright_side(model: Any, prompts: list[list[int]], max_tokens: int, eos: int | None) -> list[dict[str, Any]]:
    """Greedy ids by full forward passes (no cache), the first step's top-5 log-probs and top-2 margin."""
    import torch

    rows = []
    for prompt in prompts:
        ids, out, first = torch.tensor([prompt]), [], None
        for _ in range(max_tokens):
            with torch.inference_mode():
                logits = model(input_ids=ids).logits[0, -1].double()
            if first is None:
                top = torch.topk(torch.log_softmax(logits, -1), TOP)
                values = torch.topk(logits, 2).values
                first = {"top": {str(int(i)): float(v) for v, i in zip(top.values, top.indices, strict=True)},
                         "margin": float(values[0] - values[1])}
            token = int(logits.argmax())
            out.append(token)
            if token == eos:
                break
            ids = torch.cat([ids, torch.tensor([[token]])], 1)
        rows.append({"ids": out, **(first or {})})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--vllm-python", type=Path, required=True)
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from tunewright.chat import with_system_prompt
    from tunewright.config import load_config
    from tunewright.modeling import load_tokenizer, load_with_adapter, resolve_base_model
    from tunewright.runs import AdapterManifest, existing_run

    run = existing_run(args.run)
    config = load_config(run.config)
    manifest = AdapterManifest.read(run.adapter)
    tokenizer = load_tokenizer(run.adapter)
    base = resolve_base_model(config.model.base)
    examples = run.load_split("test")[:args.prompts]
    prompts = [list(tokenizer.apply_chat_template(with_system_prompt(e.prompt, manifest.system_prompt),
                                                  add_generation_prompt=True, tokenize=True, return_dict=True)
                    ["input_ids"]) for e in examples]
    tokens = config.eval.max_new_tokens
    model = load_with_adapter(base, run.adapter)
    ours = {"adapter": tunewright_side(model, prompts, tokens, tokenizer.eos_token_id)}
    with model.disable_adapter():
        ours["base"] = tunewright_side(model, prompts, tokens, tokenizer.eos_token_id)
    rank = json.loads((run.adapter / "adapter_config.json").read_text())["r"]
    with tempfile.TemporaryDirectory() as scratch:
        job = Path(scratch) / "job.json"
        job.write_text(json.dumps({"base": str(base), "adapter": str(run.adapter), "prompts": prompts,
                                   "max_tokens": tokens, "max_lora_rank": max(8, rank)}))
        done = subprocess.run([str(args.vllm_python), __file__, "--child", str(job)], capture_output=True,
                              text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"vLLM failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    theirs = json.loads(lines[-1][len("RESULT "):])
    rows = []
    same = "same as" if manifest.system_prompt == config.task.system_prompt else "differs from"
    print(f"system prompt: the adapter manifest's ({same} the run's task.system_prompt); vLLM dtype {theirs['dtype']}")
    print("\n| prompt | tokens | first-token margin (adapter) | adapter ids equal | base ids equal | max |Δ logprob| |")
    print("|---|---|---|---|---|---|")
    for index, prompt in enumerate(prompts):
        margin = ours["adapter"][index]["margin"]
        row: dict[str, Any] = {"prompt": index, "prompt_tokens": len(prompt), "margin": margin}
        for name in ("adapter", "base"):
            mine, other = ours[name][index], theirs[name][index]
            shared = set(mine["top"]) & set(other["top"])
            row[f"{name}_ids_equal"] = mine["ids"] == other["ids"]
            row[f"{name}_max_logprob_diff"] = max(abs(mine["top"][k] - other["top"][k]) for k in shared)
        rows.append(row)
        worst = max(row["adapter_max_logprob_diff"], row["base_max_logprob_diff"])
        print(f"| {index} | {len(prompt)} | {margin:.2e} | {row['adapter_ids_equal']} | {row['base_ids_equal']} | "
              f"{worst:.1e} |")
    if args.json:
        args.json.write_text(json.dumps({"run": str(run.root), "vllm_dtype": theirs["dtype"],
                                         "system_prompt_is_task_prompt": manifest.system_prompt
                                         == config.task.system_prompt, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]))
    else:
        main()
