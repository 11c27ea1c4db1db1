#!/usr/bin/env bash
# A user's install of uqseg, checked from outside the repository (docs/development.md#install-check).
#
#   bash tools/install_check.sh                       # CI (make install-check): beside the reference .venv
#   bash tools/install_check.sh --base ENV/bin/python --install [--constraints FILE]   # make compat-check
#
# 1. builds the sdist, then the wheel from the sdist (python -m build), and checks the wheel holds
#    the package, its configs and no tests / tools;
# 2. a user's environment: a new venv that sees the base environment's packages (torch, mmcv with
#    ops, mmengine, mmseg, ... through a .pth; never uqseg's editable install), into which pip
#    installs the wheel (not editable) with --no-index: pip must find every requirement already
#    satisfied, so installing uqseg replaces nothing, torch included. With --install the wheel is
#    instead installed into the base venv itself, pip resolving what is missing (the
#    compatibility check, on an environment holding only torch, torchvision and mmcv);
# 3. from a folder outside the repository: uqseg --help, uqseg configs copy, uqseg make-demo-data,
#    uqseg train of the copied config for a few iterations, and a config of the user's own that
#    inherits a shipped one and imports uqseg with custom_imports, trained by mmengine's Runner
#    (what mmseg's tools/train.py does) in a process that never imports uqseg itself;
# 4. (link mode) an environment without mmpretrain: import uqseg works, a classification config
#    and uqseg.cls stop with an error naming pip install "uqseg[cls]".
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_PY="$ROOT/.venv/bin/python"  # builds the sdist and wheel (the build package of the test extra)
BASE_PY=$BUILD_PY
MODE=link
CONSTRAINTS=()
ITERS=2
while [[ $# -gt 0 ]]; do
  case $1 in
    --base) BASE_PY=$2; shift 2 ;;
    --install) MODE=install; shift ;;
    --constraints) CONSTRAINTS=(-c "$2"); shift 2 ;;
    *) echo "install_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/uqseg-install-check.XXXXXX")
START=$SECONDS
log() { printf '[install-check %3ds] %s\n' $((SECONDS - START)) "$*"; }
fail() { log "FAILED: $*"; exit 1; }
# run "$@" with its output in a log file; on failure show its end
quiet() { local name=$1; shift; "$@" >"$WORK/$name.log" 2>&1 || { tail -40 "$WORK/$name.log"; fail "$name (log: $WORK/$name.log)"; }; }
log "work folder $WORK, base $BASE_PY ($MODE)"

# 1. sdist, then the wheel built from it
quiet build "$BUILD_PY" -m build --no-isolation --outdir "$WORK/dist" "$ROOT"
WHEEL=$(ls "$WORK"/dist/uqseg-*.whl)
"$BUILD_PY" - "$WHEEL" <<'PY' || fail "wheel contents"
import sys
import zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ['uqseg/__init__.py', 'uqseg/cli/__init__.py', 'uqseg/configs/aslp_sod.py', 'uqseg/configs/bce_sod_demo.py',
        'uqseg/configs/_base_/models/upernet_r50_binary.py', 'uqseg/configs/cls/ce_fmnist_demo.py',
        'uqseg/configs/cls/_base_/fashion_mnist_demo.py']
missing = [n for n in need if n not in names]
stray = sorted(n for n in names if n.split('/')[0] in ('tests', 'tools', 'benchmarks', 'configs', 'docs'))
assert not missing and not stray, (missing, stray[:5])
entry = [n for n in names if n.endswith('entry_points.txt')]
print(f'{len(names)} files; configs included')
PY
log "built $(cd "$WORK/dist" && ls | tr '\n' ' ')"

# 2. the user's environment
site_of() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
linked_env() {  # linked_env NAME EXCLUDE_REGEX: a venv seeing the base packages but uqseg and EXCLUDE
  local env="$WORK/$1" view="$WORK/$1-base-packages" base_site entry name
  base_site=$(site_of "$BASE_PY")
  "$BASE_PY" -m venv --without-pip "$env"  # pip, setuptools: the base ones
  mkdir "$view"
  for entry in "$base_site"/*; do
    name=$(basename "$entry")
    [[ $name =~ ^(__editable__|uqseg) ]] && continue
    [[ -n $2 && $name =~ $2 ]] && continue
    ln -s "$entry" "$view/$name"
  done
  echo "import site; site.addsitedir('$view')" > "$(site_of "$env/bin/python")/_base_packages.pth"
}
if [[ $MODE == link ]]; then
  linked_env user ''
  ENV_PY="$WORK/user/bin/python"
  quiet pip-install "$ENV_PY" -m pip install --no-index --progress-bar off "${WHEEL}[cls,sod]"
  own=$(ls "$(site_of "$ENV_PY")" | grep -v -E '^(pip|_base_packages\.pth|uqseg|__pycache__)' || true)
  [[ -z $own ]] || fail "installing the wheel installed more than uqseg: $own"
  log "wheel installed into $WORK/user (uqseg only; torch, mmcv, mmseg from the base environment)"
else
  ENV_PY=$BASE_PY
  quiet pip-install "$ENV_PY" -m pip install --progress-bar off "${CONSTRAINTS[@]}" "${WHEEL}[cls,sod]"
  log "wheel installed into $(dirname "$(dirname "$ENV_PY")") with its requirements: $(grep -E '^Successfully installed' "$WORK/pip-install.log" | cut -c1-300)"
fi
BIN=$(dirname "$ENV_PY")

# 3. a user's folder outside the repository
mkdir "$WORK/project" && cd "$WORK/project"
export PYTHONNOUSERSITE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
"$ENV_PY" - "$ROOT" <<'PY' || fail "uqseg is imported from the repository, not the wheel"
import os.path as osp
import sys
import uqseg
path = osp.realpath(uqseg.__file__)
assert not path.startswith(osp.realpath(sys.argv[1]) + '/'), path
print(f'uqseg {uqseg.__version__} from {osp.dirname(path)}')
PY
quiet help "$BIN/uqseg" --help
grep -q 'eval-selective' "$WORK/help.log" || fail "uqseg --help lists no eval-selective"
quiet copy "$BIN/uqseg" configs copy bce_sod_demo aslp_sod_demo configs
[[ -f configs/_base_/models/r18_half_binary.py ]] || fail "configs copy left out a _base_ file"
quiet data "$BIN/uqseg" make-demo-data --only sod
SHORT=(--cfg-options "train_cfg.max_iters=$ITERS" train_cfg.val_interval=1000 default_hooks.checkpoint.interval=1000
       default_hooks.logger.interval=1 train_dataloader.batch_size=2)
quiet train "$BIN/uqseg" train configs/bce_sod_demo.py --work-dir work_dirs/bce "${SHORT[@]}"
ls work_dirs/bce/iter_"$ITERS".pth >/dev/null || fail "uqseg train wrote no iter_$ITERS.pth"
log "uqseg --help, configs copy, make-demo-data, train ($ITERS iterations) from $WORK/project"
cat > my_aslp.py <<EOF
_base_ = ['./configs/aslp_sod_demo.py']
custom_imports = dict(imports=['uqseg'], allow_failed_imports=False)
work_dir = 'work_dirs/my_aslp'
train_cfg = dict(max_iters=$ITERS, val_interval=1000)
train_dataloader = dict(batch_size=2)
default_hooks = dict(checkpoint=dict(interval=1000), logger=dict(interval=1))
EOF
quiet custom-imports "$ENV_PY" - <<'PY'
import sys

from mmengine.config import Config
from mmengine.runner import Runner

assert 'uqseg' not in sys.modules
cfg = Config.fromfile('my_aslp.py')  # imports uqseg through custom_imports
assert 'uqseg' in sys.modules and type(cfg.model.decode_head.type) is str
runner = Runner.from_cfg(cfg)
head = type(runner.model.decode_head)
assert head.__module__.startswith('uqseg.') and head.__name__.startswith('ASLP'), head  # uqseg's, from mmseg's MODELS
runner.train()
PY
log "a config of the user's own (custom_imports = uqseg, base aslp_sod_demo) trained by mmengine's Runner"

# 4. without mmpretrain
if [[ $MODE == link ]]; then
  cd "$WORK"
  linked_env nocls '^mmpretrain'
  NOCLS="$WORK/nocls/bin/python"
  quiet pip-install-nocls "$NOCLS" -m pip install --no-index --progress-bar off "${WHEEL}[sod]"
  cd "$WORK/project"
  quiet import-nocls "$NOCLS" - <<'PY'
import importlib.util

import uqseg

assert importlib.util.find_spec('mmpretrain') is None
assert 'seg' in uqseg.__all__ and 'cls' not in uqseg.__all__, uqseg.__all__
try:
    import uqseg.cls  # noqa: F401
except ImportError as e:
    assert 'pip install "uqseg[cls]"' in str(e), e
else:
    raise AssertionError('uqseg.cls imported without mmpretrain')
print('uqseg imports without mmpretrain; uqseg.cls names the extra')
PY
  if "$WORK/nocls/bin/uqseg" train cls/ce_fmnist_demo >"$WORK/train-nocls.log" 2>&1; then
    fail "a classification config trained without mmpretrain"
  fi
  grep -q 'pip install "uqseg\[cls\]"' "$WORK/train-nocls.log" || { cat "$WORK/train-nocls.log"; fail "no pip install hint"; }
  [[ $(wc -l < "$WORK/train-nocls.log") -le 3 ]] || { cat "$WORK/train-nocls.log"; fail "more than a one-line error"; }
  log "without mmpretrain: import uqseg works; uqseg train cls/ce_fmnist_demo says: $(head -1 "$WORK/train-nocls.log")"
fi
log "passed"
rm -rf "$WORK"
