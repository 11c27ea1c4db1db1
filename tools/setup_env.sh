#!/usr/bin/env bash
# Create .venv at the repository root and install uqseg's stack, skipping what is already done.
#
# Order matters (see README "Setup"):
#   1. torch + torchvision that import together.  The CPU wheel of torch beside the registry's
#      CUDA-built torchvision fails ("operator torchvision::nms does not exist"), so we ask for
#      torch===2.13.0 (exact match, no local label): the registry's CUDA build, which runs on CPU.
#   2. mmcv 2.1.0 with compiled ops (mmseg 1.2.2 imports mmcv.ops and needs mmcv < 2.2).  Only
#      the source package exists on the registry, so it is built once; pip's wheel cache keeps
#      the result for later venvs on this machine.
#   3. mmengine, mmsegmentation, opencv, albumentations, pysodmetrics, matplotlib, uqseg (-e .[test]).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
PYTHON=${PYTHON:-python3.11}
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
MMCV_VERSION=2.1.0

log() { printf '[setup] %s\n' "$*"; }
have() { "$PY" - "$@" <<'PY' >/dev/null 2>&1
import sys, importlib
for stmt in sys.argv[1:]:
    exec(stmt)
PY
}

if [[ ! -x "$PY" ]]; then
  log "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip 'setuptools==80.9.0' wheel
fi
PIP=("$PY" -m pip install --progress-bar off)

# 1. torch / torchvision
if have "import torch, torchvision; assert torch.__version__.split('+')[0]=='$TORCH_VERSION'; import torchvision.ops; torchvision.ops.nms(torch.zeros(1,4), torch.zeros(1), 0.5)"; then
  log "torch $TORCH_VERSION + torchvision already import together"
else
  log "installing torch===$TORCH_VERSION and torchvision==$TORCHVISION_VERSION"
  "${PIP[@]}" "torch===$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

# 2. mmcv with compiled ops
if have "import mmcv; assert mmcv.__version__=='$MMCV_VERSION'; from mmcv.ops import nms; import mmcv._ext"; then
  log "mmcv $MMCV_VERSION with ops already installed"
else
  log "installing mmcv==$MMCV_VERSION with compiled ops (first build takes ~10 min on 2 cores; cached afterwards)"
  "${PIP[@]}" 'setuptools==80.9.0' wheel ninja psutil
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" --no-build-isolation "mmcv==$MMCV_VERSION"
fi

# 3. the rest, and uqseg itself (editable, with the test extra); pip skips what is satisfied
log "installing mmengine, mmsegmentation, opencv, albumentations, pysodmetrics, matplotlib, uqseg[test]"
"${PIP[@]}" -q -e ".[test]"
"$PY" -c "import mmcv.ops, mmseg.models, uqseg, torchvision.ops" \
  || { log "the installed stack does not import together"; exit 1; }
log "environment ready: $VENV"
