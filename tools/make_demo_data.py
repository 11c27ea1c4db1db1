"""Write the embedded demo data (synthetic SOD in DUTS/ECSSD/DTD layouts, and multiclass shapes) in seconds.

    python tools/make_demo_data.py [--root data/demo] [--shapes-root data/demo_shapes]
                                   [--only {sod,shapes}] [--seed 0] [--force]

Each data set has its own ``.complete`` stamp and is skipped when complete; ``--force`` rewrites
the ones written (both, unless ``--only`` names one).
"""
import argparse
import os.path as osp
import shutil
import time

from uqseg.seg.datasets.demo_data import make_demo_data
from uqseg.seg.datasets.shapes_demo import make_shapes_demo


def _write(what: str, root: str, make, seed: int, force: bool) -> None:
    stamp = osp.join(root, '.complete')
    if osp.exists(stamp) and not force:
        print(f'{what} already in {root} (use --force to rewrite)')
        return
    if osp.exists(root):
        shutil.rmtree(root)
    start = time.time()
    sets = make(root, seed=seed)
    with open(stamp, 'w') as f:
        f.write(f'seed={seed}\n')
    print(f'{what} written to {root} in {time.time() - start:.1f} s: {", ".join(sets)}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='data/demo', help='folder of the SOD demo')
    parser.add_argument('--shapes-root', default='data/demo_shapes', help='folder of the shapes demo')
    parser.add_argument('--only', choices=('sod', 'shapes'), help='write only this demo')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true', help='rewrite the data even if it exists')
    args = parser.parse_args(argv)
    if args.only in (None, 'sod'):
        _write('demo data', args.root, make_demo_data, args.seed, args.force)
    if args.only in (None, 'shapes'):
        _write('shapes demo data', args.shapes_root, make_shapes_demo, args.seed, args.force)


if __name__ == '__main__':
    main()
