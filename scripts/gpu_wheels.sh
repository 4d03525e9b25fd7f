#!/usr/bin/env bash
# Downloads into .whl/ the wheels of the packages that nag_model and benchmarks/gpu_synthesis.py import and the
# GPU machine's image lacks (its package list: the device tool's KINDS.md), at the versions of this checkout's
# .venv, for Python 3.12 (the image's) or the version given:
#   bash scripts/gpu_wheels.sh [PYTHON_VERSION]
# A device call then carries .whl and starts with the install line this prints.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-3.12}"
PKGS=(librosa pyloudnorm soundfile soxr audioread ftfy wcwidth cachetools cffi pycparser pooch decorator platformdirs)
PLATFORMS=()
for n in 2_28 2_27 2_17; do PLATFORMS+=(--platform "manylinux_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
rm -rf .whl && mkdir .whl
for p in "${PKGS[@]}"; do
  v=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$p'))")
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
    "${PLATFORMS[@]}" -d .whl "$p==$v"
done
ls .whl
echo 'python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit;'
