"""Where ASLP's calibration gain and accuracy cost come from, on the runs of the demo seed study.

    python tools/aslp_analysis.py --work-dir work_dirs/seeds --seeds 0 1 2 3 4 \
        [--baseline bce_sod_demo] [--methods aslp_sod_demo aslp_sod_conservative_demo] [--sets DUTS-TE ECSSD]

For every seed and run of ``tools/demo.py --seeds`` it writes the test maps once
(``tools/test.py --out <run>/maps``), then, per test set, compares each method with the baseline:

* the alphas of the ASLP checkpoint (mean, max, share at the cap);
* the mean foreground probability on salient and on background pixels;
* the 10 calibration bins (top-label confidence): share of pixels, mean confidence, accuracy
  and signed contribution ``n_k / N (conf_k - acc_k)`` to the pooled ECE (positive =
  over-confident), from the core's :class:`~uqseg.core.accumulators.CalibrationAccumulator`;
* the mean F curve (pysodmetrics, beta^2 = 0.3, 256 thresholds on the min-max normalised map):
  max-F, the threshold where it peaks, precision and recall there.

Printed as Markdown and written to ``<work-dir>/analysis.md``.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import py_sod_metrics as sod
from mmengine.config import Config

from uqseg.core.accumulators import CalibrationAccumulator
from uqseg.core.aslp_rule import AT_CAP_TOL
from uqseg.engine.checkpoint import load_checkpoint_file
from uqseg.seg.aslp_alphas import alpha_cap
from uqseg.seg.metrics.prediction import read_prediction
from uqseg.seg.saved_maps import list_maps, make_sample, read_gt, read_pred

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

GT = {'DUTS-TE': 'DUTS-TE/DUTS-TE-Mask', 'ECSSD': 'ECSSD/ground_truth_mask'}


def write_maps(run_dir: str, config: str) -> str:
    maps = osp.join(run_dir, 'maps')
    if not osp.isdir(maps):
        with open(osp.join(run_dir, 'last_checkpoint')) as f:
            ckpt = f.read().strip()
        subprocess.run([sys.executable, 'tools/test.py', config, ckpt, '--work-dir', osp.join(run_dir, 'analysis'),
                        '--out', maps], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return maps


def alpha_stats(run_dir: str, config: str) -> dict:
    with open(osp.join(run_dir, 'last_checkpoint')) as f:
        state = load_checkpoint_file(f.read().strip())['state_dict']  # this script's own runs: the allow-list
    alpha = state.get('decode_head.alpha')
    if alpha is None:
        return {}
    cap = alpha_cap(Config.fromfile(osp.join(ROOT, config)))
    return dict(alpha_mean=float(alpha.mean()), alpha_max=float(alpha.max()),
                at_cap=float((alpha >= cap - AT_CAP_TOL).double().mean()))


def set_stats(pred_dir: str, gt_dir: str) -> dict:
    preds, gts = list_maps(pred_dir, '.png', 'prediction'), list_maps(gt_dir, '.png', 'ground truth')
    cal = CalibrationAccumulator(10)
    fm = sod.FmeasureV2(metric_handlers={
        'fm': sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3),
        'pre': sod.PrecisionHandler(with_dynamic=True, with_adaptive=False),
        'rec': sod.RecallHandler(with_dynamic=True, with_adaptive=False)})
    fg_p = fg_n = bg_p = bg_n = 0.0
    for name in sorted(set(preds) & set(gts)):
        v, y = read_pred(preds[name]), read_gt(gts[name])
        pred = read_prediction(make_sample(v.astype(np.float32) / 255, y, 'set', preds[name]))
        p, lab = pred.p, pred.label
        conf, correct = pred.top_label()  # max(p, 1 - p) and p > 0.5, as the metrics read it
        cal.update(conf, correct)
        fm.step(pred=v, gt=y * 255)
        fg_p, fg_n = fg_p + float(p[lab == 1].double().sum()), fg_n + float((lab == 1).sum())
        bg_p, bg_n = bg_p + float(p[lab == 0].double().sum()), bg_n + float((lab == 0).sum())
    res = fm.get_results()
    f, pre, rec = (np.asarray(res[k]['dynamic'], np.float64) for k in ('fm', 'pre', 'rec'))
    best = int(np.argmax(f))
    r = cal.reliability()
    n = float(r['count'].sum())
    return dict(ece=cal.compute()['ECE'], p_fg=fg_p / fg_n, p_bg=bg_p / bg_n, max_f=float(f[best]),
                # pysodmetrics' curves run from threshold 255 down to 0
                f_threshold=(255 - best) / 255, precision=float(pre[best]), recall=float(rec[best]),
                bins=[(float(r['lower'][k]), float(r['count'][k]) / n, float(r['conf'][k]), float(r['acc'][k]),
                       float(r['count'][k]) / n * float(r['conf'][k] - r['acc'][k]))
                      for k in range(10) if r['count'][k] > 0])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--work-dir', default='work_dirs/seeds')
    ap.add_argument('--data-root', default='data/demo')
    ap.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument('--baseline', default='bce_sod_demo')
    ap.add_argument('--methods', nargs='+', default=['aslp_sod_demo', 'aslp_sod_conservative_demo'])
    ap.add_argument('--sets', nargs='+', default=['DUTS-TE', 'ECSSD'])
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    names = [args.baseline, *args.methods]
    stats: dict = {}
    for seed in args.seeds:
        for name in names:
            run = osp.join(args.work_dir, f'seed{seed}', name)
            maps = write_maps(run, f'configs/{name}.py')
            stats[seed, name] = dict(alpha_stats(run, f'configs/{name}.py'), **{
                s: set_stats(osp.join(maps, s), osp.join(args.data_root, GT[s])) for s in args.sets})
    lines = []
    keys = ('ece', 'p_fg', 'p_bg', 'max_f', 'f_threshold', 'precision', 'recall')
    for s in args.sets:
        lines += [f'\n### {s}: means over seeds {args.seeds}\n',
                  '| method | alpha mean | alpha max | ' + ' | '.join(keys) + ' |', '|---' * (3 + len(keys)) + '|']
        for name in names:
            rows = [stats[seed, name] for seed in args.seeds]
            alpha = [f"{np.mean([r.get(k, np.nan) for r in rows]):.4f}" for k in ('alpha_mean', 'alpha_max')]
            vals = [f'{np.mean([r[s][k] for r in rows]):.4f}' for k in keys]
            lines.append(f'| {name} | ' + ' | '.join(alpha + vals) + ' |')
        lines += [f'\n{s}: signed contribution of each confidence bin to the pooled ECE (mean over seeds; '
                  'share of pixels / mean confidence / accuracy / contribution)\n',
                  '| bin | ' + ' | '.join(names) + ' |', '|---' * (1 + len(names)) + '|']
        for lo in np.arange(0.5, 1.0, 0.1):
            cells = []
            for name in names:
                got = [b for seed in args.seeds for b in stats[seed, name][s]['bins'] if abs(b[0] - lo) < 1e-9]
                if not got:
                    cells.append('-')
                    continue
                m = np.mean(np.asarray([g[1:] for g in got]), axis=0)
                cells.append(f'{m[0]:.3f} / {m[1]:.3f} / {m[2]:.3f} / {m[3]:+.4f}')
            lines.append(f'| {lo:.1f}-{lo + 0.1:.1f} | ' + ' | '.join(cells) + ' |')
    text = '\n'.join(lines)
    with open(osp.join(args.work_dir, 'analysis.md'), 'w') as f:
        f.write(text + '\n')
    print(text)


if __name__ == '__main__':
    main()
