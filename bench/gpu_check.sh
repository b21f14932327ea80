#!/usr/bin/env bash
# The GPU path end to end, in one prepared run (under 8 minutes on one GPU), from the source tree
# without installing (PYTHONPATH=src), so it runs on a borrowed image with its own packages:
#   1. training throughput of the quickstart config in bf16 LoRA: tunewright against the tutorial
#      recipe (Trainer + peft, padded to max_length) in the same process (bench/train_throughput.py);
#   2. QLoRA training of the same config when bitsandbytes is importable (tunewright train);
#   3. `tunewright plan` against the measured peak memory of lora (and qlora) (bench/plan_memory.py);
#   4. serving 8 adapters: mixed-adapter batching against base only and serial switching
#      (bench/serve_throughput.py);
# and writes OUT/gpu_check.json with every part, the versions and the issue's targets checked.
#
#   bench/gpu_check.sh [--out DIR] [--base MODEL_DIR]   on the GPU (default base: the packaged model)
#   bench/gpu_check.sh --dry-run [--out DIR]            on CPU, a tiny random model, every step in
#                                                       seconds (tests/test_gpu_check.py runs this)
# PYTHON picks the interpreter (default: python3). Each step has its own time limit; a failed step is
# recorded in the JSON with its exit code and the run goes on.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
OUT="$ROOT/bench/results/gpu_check"
BASE=""
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    --base) BASE="$2"; shift ;;
    *) echo "usage: bench/gpu_check.sh [--dry-run] [--out DIR] [--base MODEL_DIR]" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT/parts"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
CONFIG="$ROOT/examples/fintech-support/tunewright.yaml"
STEPS="$OUT/parts/steps.tsv"
: > "$STEPS"

if [ "$DRY" = 1 ]; then
  [ -n "$BASE" ] || { BASE="$OUT/tiny-model"; "$PY" "$ROOT/bench/tiny_model.py" "$BASE" || exit 1; }
  QUICK=(--quick)
  LIMIT=120
  SERVE=(--quick --device cpu --threads 1)
  PLAN=(--batch 2 --seq-len 64)
  # the tiny tokenizer spells the example in more tokens than SmolLM2's
  SETS=(--set "model.base=$BASE" --set training.max_seq_len=768 --set training.precision=fp32)
else
  QUICK=()
  LIMIT=240
  SERVE=(--device cuda)
  PLAN=(--batch 8 --seq-len 256)
  SETS=(--set training.precision=bf16)
  [ -z "$BASE" ] || SETS+=(--set "model.base=$BASE")
fi
MODEL="${BASE:-smollm2-135m-instruct}"

step() {  # step NAME SECONDS COMMAND...: run it with a time limit, log it, record its exit code and time
  local name="$1" limit="$2"; shift 2
  local started=$SECONDS
  echo "== $name" >&2
  timeout "$limit" "$@" > "$OUT/parts/$name.log" 2>&1
  local code=$?
  echo -e "$name\t$code\t$((SECONDS - started))" >> "$STEPS"
  tail -n 6 "$OUT/parts/$name.log" >&2
}

export OUT_PARTS="$OUT/parts"
step environment 60 "$PY" -c "
import importlib, json, os, sys, torch
versions = {}
for name in ('torch', 'transformers', 'peft', 'trl', 'accelerate', 'bitsandbytes'):
    try:
        versions[name] = importlib.import_module(name).__version__
    except Exception:  # missing or broken: recorded as such, the other steps say what it costs
        versions[name] = None
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
json.dump({'python': sys.version.split()[0], 'versions': versions, 'gpu': gpu,
           'gpu_memory_bytes': torch.cuda.get_device_properties(0).total_memory if gpu else None,
           'bf16': bool(gpu and torch.cuda.is_bf16_supported()), 'cpus': os.cpu_count()},
          open(os.environ['OUT_PARTS'] + '/environment.json', 'w'), indent=2)
print(gpu or 'no GPU', versions)"

step train_lora 240 "$PY" "$ROOT/bench/train_throughput.py" "${QUICK[@]}" "${SETS[@]}" \
  --json "$OUT/parts/train_lora.json"

if "$PY" -c "import bitsandbytes" 2>/dev/null; then
  step train_qlora 180 "$PY" -m tunewright train "$CONFIG" --out "$OUT/parts/qlora-run" "${SETS[@]}" \
    --set method.name=qlora --set training.epochs=1 --set training.eval_every=1000 \
    ${QUICK[0]:+--set training.max_steps=2}
  PLAN_METHODS=(lora qlora)
else
  echo -e "train_qlora\tskipped: bitsandbytes is not installed\t0" >> "$STEPS"
  PLAN_METHODS=(lora)
fi

step plan_memory 120 "$PY" "$ROOT/bench/plan_memory.py" --model "$MODEL" --methods "${PLAN_METHODS[@]}" \
  "${PLAN[@]}" --json "$OUT/parts/plan_memory.json"

step serve_8_adapters "$LIMIT" "$PY" "$ROOT/bench/serve_throughput.py" --adapters 8 --base "$MODEL" \
  "${SERVE[@]}" --json "$OUT/parts/serve.json"

"$PY" "$ROOT/bench/gpu_check_summary.py" "$OUT" "$DRY"
