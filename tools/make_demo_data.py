"""Write the embedded demo data (synthetic, DUTS/ECSSD/DTD layouts) in a few seconds.

    python tools/make_demo_data.py [--root data/demo] [--seed 0] [--force]
"""
import argparse
import os.path as osp
import shutil
import time

from uqseg.seg.datasets.demo_data import make_demo_data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='data/demo')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true', help='rewrite the data even if it exists')
    args = parser.parse_args(argv)
    stamp = osp.join(args.root, '.complete')
    if osp.exists(stamp) and not args.force:
        print(f'demo data already in {args.root} (use --force to rewrite)')
        return
    if osp.exists(args.root):
        shutil.rmtree(args.root)
    start = time.time()
    sets = make_demo_data(args.root, seed=args.seed)
    with open(stamp, 'w') as f:
        f.write(f'seed={args.seed}\n')
    print(f'demo data written to {args.root} in {time.time() - start:.1f} s: {", ".join(sets)}')


if __name__ == '__main__':
    main()
