#!/usr/bin/env bash
# The GPU check: decision, distillation, RL and competence benches on CUDA, in one command under 9 minutes.
# On a lent GPU machine, from the repository root: `bash bench/device_check.sh`. Such a machine reaches no registry:
# run `bash bench/device_wheels.sh` here first and carry .device-wheels; never needed by the tests.
# Each stage runs under its own timeout and a failed stage does not stop the next; the script exits non-zero if any
# failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=$(command -v python3 || command -v python)
export PYTHONUNBUFFERED=1
if [ -d .device-wheels ]; then
  "$PY" -m pip install --quiet --no-index --no-deps .device-wheels/*.whl
else
  "$PY" -m pip install --quiet -r requirements.txt
fi
"$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
OUT="${OUT:-runs/device-check}"
mkdir -p "$OUT"
failed=()
stage() {  # stage NAME SECONDS COMMAND...
  local name=$1 seconds=$2; shift 2
  echo "== $name"
  local start=$SECONDS
  timeout "$seconds" "$PY" "$@" || failed+=("$name (exit $?)")
  echo "== $name took $((SECONDS - start)) s"
}
stage "decide (HRM vs GPT-2 124M, random weights)" 60 bench/decide.py --device cuda --repeats 20
stage "distill (1,100 oracle decisions, the default recipe)" 150 bench/distill.py --device cuda --out "$OUT/distill"
checkpoint=$(ls "$OUT"/distill/models/*/last.pt 2>/dev/null | head -1)
if [ -n "$checkpoint" ]; then
  stage "rl (memoised rollouts vs acting-only; grouped vs ungrouped PPO epoch)" 90 \
    bench/rl.py --device cuda --checkpoint "$checkpoint" --acting-seconds 15
else
  failed+=("rl (no distilled checkpoint)")
fi
stage "competence (oracle:0.5, 3 minutes of the whole loop)" 230 \
  bench/competence.py --device cuda --starts oracle:0.5 --minutes 3 --eval-episodes 100 --out "$OUT/competence"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all stages passed"
