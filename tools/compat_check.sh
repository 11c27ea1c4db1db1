#!/usr/bin/env bash
# The two ends of uqseg's declared ranges (make compat-check; docs/development.md#reference-environment-and-compatibility):
#   oldest: Python 3.10, torch 2.1.2 and every other direct requirement at its lower bound (requirements/oldest.txt);
#   newest Python: 3.12 with the reference set (requirements/constraints.txt, torch 2.13).
# For each: a venv under $COMPAT_DIR (default .compat/) with torch, torchvision and mmcv 2.1.0 built with its ops
# against that torch (kept for later runs: ~10-25 minutes on 2 cores each), then tools/install_check.sh --install
# (the wheel with its requirements resolved by pip, uqseg --help, configs copy, training, custom_imports), then the
# test suite with that interpreter unless NO_TESTS=1.
#   bash tools/compat_check.sh [oldest|py312 ...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COMPAT_DIR=${COMPAT_DIR:-$ROOT/.compat}
PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
log() { printf '[compat-check] %s\n' "$*"; }
python_of() { ls "$PYENV_ROOT"/versions/"$1".*/bin/python"$1" 2>/dev/null | tail -1 || command -v "python$1"; }

check() {  # check NAME PYTHON_VERSION TORCH TORCHVISION CONSTRAINTS
  local name=$1 pyv=$2 torch=$3 tv=$4 constraints=$5
  local env="$COMPAT_DIR/$name" py
  py=$(python_of "$pyv")
  [[ -x $py ]] || { log "$name: no python$pyv found"; return 1; }
  if ! "$env/bin/python" -c "import torch, mmcv.ops; assert torch.__version__.split('+')[0] == '$torch'" 2>/dev/null; then
    log "$name: creating $env (python$pyv, torch $torch, mmcv 2.1.0 with ops built from source)"
    rm -rf "$env"
    "$py" -m venv "$env"
    "$env/bin/python" -m pip install -q --upgrade pip 'setuptools==80.9.0' wheel ninja psutil
    "$env/bin/python" -m pip install -q --progress-bar off -c "$constraints" "torch==$torch" "torchvision==$tv" numpy
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$env/bin/python" -m pip install -q --progress-bar off \
      --no-build-isolation --no-cache-dir -c "$constraints" mmcv==2.1.0
  fi
  log "$name: $("$env/bin/python" -c "import sys, torch, mmcv; print(f'python {sys.version.split()[0]}, torch {torch.__version__}, mmcv {mmcv.__version__}')" 2>/dev/null)"
  bash "$ROOT/tools/install_check.sh" --base "$env/bin/python" --install --constraints "$constraints"
  "$env/bin/python" -m pip list 2>/dev/null | grep -i -E '^(torch|torchvision|mmcv|mmengine|mmsegmentation|mmpretrain|numpy|opencv-python-headless|albumentations|matplotlib|pysodmetrics|scikit-learn|mlxtend) ' | tr -s ' ' | sed "s/^/[compat-check] $name: /"
  if [[ ${NO_TESTS:-0} != 1 ]]; then
    "$env/bin/python" -m pip install -q --progress-bar off -c "$constraints" pytest torchmetrics netcal hypothesis mpmath
    log "$name: the test suite"
    (cd "$ROOT" && "$env/bin/python" -m pytest -q -p no:cacheprovider tests | tail -15)
  fi
}

targets=("${@:-oldest py312}")
for target in ${targets[@]}; do
  case $target in
    oldest) check py310-torch2.1.2 3.10 2.1.2 0.16.2 "$ROOT/requirements/oldest.txt" ;;
    py312) check py312-torch2.13 3.12 2.13.0 0.28.0 "$ROOT/requirements/constraints.txt" ;;
    *) log "unknown target $target (oldest, py312)"; exit 2 ;;
  esac
done
