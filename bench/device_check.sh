#!/usr/bin/env bash
# The GPU check: decision, RL, distillation and competence benches on CUDA, in one command under 10 minutes.
# Run it on a lent GPU machine from the repository root (`bash bench/device_check.sh`); never needed by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -r requirements.txt
python -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
OUT="${OUT:-runs/device-check}"
mkdir -p "$OUT"
echo "== decide (HRM vs GPT-2 124M, random weights)"
timeout 90 python bench/decide.py --device cuda --repeats 20
echo "== distill (1,100 oracle decisions, the default recipe)"
timeout 180 python bench/distill.py --device cuda --out "$OUT/distill"
echo "== rl (memoised rollouts vs acting-only; grouped vs ungrouped PPO epoch)"
timeout 120 python bench/rl.py --device cuda --checkpoint "$(ls "$OUT"/distill/models/*/last.pt | head -1)" --acting-seconds 15
echo "== competence (oracle:0.5, 3 minutes of the whole loop)"
timeout 240 python bench/competence.py --device cuda --starts oracle:0.5 --minutes 3 --eval-episodes 100 --out "$OUT/competence"
