"""Write split files (image names without suffix, one per line) for the SOD data.

    # hold out 1,000 DUTS-TR images for validation -> train.txt / val.txt in the DUTS-TR folder
    python tools/make_sod_split.py holdout data/sod/DUTS-TR --n 1000 --seed 0
    # pick 500 DTD textures as the out-of-distribution set -> ood500.txt in the dtd folder
    python tools/make_sod_split.py subset data/sod/dtd --n 500 --seed 0 --name ood500.txt
"""
import argparse
import os.path as osp

import numpy as np

from uqseg.seg.datasets import SOD_LAYOUTS
from uqseg.seg.datasets.splits import holdout_split, list_names, write_split


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('mode', choices=['holdout', 'subset'])
    parser.add_argument('root', help='the data set folder (e.g. data/sod/DUTS-TR)')
    parser.add_argument('--layout', default=None, help=f'one of {sorted(SOD_LAYOUTS)} (default: DUTS-TR '
                        'for holdout, DTD for subset)')
    parser.add_argument('--n', type=int, required=True, help='images held out / picked')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--name', default='ood500.txt', help='subset file name')
    args = parser.parse_args(argv)
    layout = SOD_LAYOUTS[args.layout or ('DUTS-TR' if args.mode == 'holdout' else 'DTD')]
    img_dir = osp.join(args.root, layout['img_path'])
    names = list_names(img_dir, layout['img_suffix'])
    if not names:
        raise SystemExit(f'no {layout["img_suffix"]} image found under {img_dir}')
    if args.mode == 'holdout':
        train, val = holdout_split(names, args.n, args.seed)
        write_split(osp.join(args.root, 'train.txt'), train)
        write_split(osp.join(args.root, 'val.txt'), val)
        print(f'{args.root}: {len(train)} train / {len(val)} held out (train.txt, val.txt)')
    else:
        if args.n > len(names):
            raise SystemExit(f'asked for {args.n} images but {img_dir} has {len(names)}')
        pick = np.random.default_rng(args.seed).choice(len(names), args.n, replace=False)
        write_split(osp.join(args.root, args.name), sorted(names[i] for i in pick))
        print(f'{args.root}: {args.n} of {len(names)} images in {args.name}')


if __name__ == '__main__':
    main()
