"""The exact reference of the ranking and calibration property tests (image and pixel level),
written from the definitions: mpmath at 1,000 significant digits (enough for logit differences
of 2,000: ``exp(-2000) ~ 1e-869``) on each row's values sorted (rows that are permutations of
each other give the same numbers, as they must), brute-force ranking metrics with exact
fractions; and the hypothesis strategy of their inputs."""
import math
from fractions import Fraction

import mpmath
import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

DPS = 1000
DTYPES = {'float16': torch.float16, 'float32': torch.float32, 'float64': torch.float64}


def exact_row(values, label):
    """Exact (mpf) max-prob, margin, entropy confidence, -log p_y and Brier of one row."""
    k = len(values)
    with mpmath.workdps(DPS):
        zs = sorted((mpmath.mpf(v) for v in values), reverse=True)
        m = zs[0]
        log_s = mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in zs))
        logp = [v - m - log_s for v in zs]
        p = [mpmath.exp(lp) for lp in logp]
        h = -mpmath.fsum(pi * lpi for pi, lpi in zip(p, logp))
        ent = 1 - h / mpmath.log(k) if k > 1 else mpmath.mpf(1)
        margin = p[0] - p[1] if k > 1 else mpmath.mpf(1)
        p = p + [mpmath.mpf(0)]  # p[1] = 0 for one class
        lp_y = mpmath.mpf(values[label]) - m - log_s
        p_full = [mpmath.exp(mpmath.mpf(v) - m - log_s) for v in values]
        brier = mpmath.fsum((pj - (1 if j == label else 0)) ** 2 for j, pj in enumerate(p_full))
        rest = mpmath.fsum(p[1:])
        key = {'max-prob': mpmath.log(p[0]) - mpmath.log(rest) if rest else mpmath.inf,
               'margin': mpmath.log(margin) - mpmath.log(rest + p[1]) if margin > 0 else -mpmath.inf,
               'entropy': -mpmath.log(h) if h > 0 else mpmath.inf}
        return {'max-prob': p[0], 'margin': margin, 'entropy': ent, 'nll': -lp_y, 'brier': brier, 'key': key}


def resolvable(rows, name, rel=1e-10):
    """False if two rows' exact keys differ by less than ``rel`` (relative): float64 keys cannot
    order them (e.g. float64 logits one ulp apart, or entropies within 1e-90 of log K)."""
    keys = sorted(r['key'][name] for r in rows)
    for a, b in zip(keys, keys[1:]):
        if a != b and mpmath.isfinite(a) and mpmath.isfinite(b) and b - a <= rel * max(1, abs(a), abs(b)):
            return False
    return True


def next_toward(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``torch.nextafter(x, y)``; for float16 numpy's (torch < 2.2 has no float16 CPU kernel of it)."""
    if x.dtype == torch.float16:
        return torch.from_numpy(np.asarray(np.nextafter(x.numpy(), y.numpy())))
    return torch.nextafter(x, y)


def exact_ranking(conf, correct):
    """AURC (ties in expectation), AUROC (Mann-Whitney, ties 1/2) and the risk-coverage curve of
    exact confidences, with fractions."""
    n = len(conf)
    order = sorted(range(n), key=lambda i: conf[i], reverse=True)
    groups, i = [], 0
    while i < n:
        j = i
        while j < n and conf[order[j]] == conf[order[i]]:
            j += 1
        groups.append([order[t] for t in range(i, j)])
        i = j
    risks, errors_before, k = [], Fraction(0), 0
    for g in groups:
        e = sum(1 - correct[t] for t in g)
        for t in range(1, len(g) + 1):
            risks.append((errors_before + Fraction(t * e, len(g))) / (k + t))
        errors_before += e
        k += len(g)
    pos = [conf[i] for i in range(n) if correct[i]]
    neg = [conf[i] for i in range(n) if not correct[i]]
    if pos and neg:
        u = sum(Fraction(1) if a > b else Fraction(1, 2) if a == b else 0 for a in pos for b in neg)
        auroc = float(u / (len(pos) * len(neg)))
    else:
        auroc = math.nan
    return {'AURC': float(sum(risks) / n), 'AUROC': auroc, 'risks': risks}


def exact_cov_at_acc(risks, target):
    n = len(risks)
    ok = [k for k in range(n) if 1 - risks[k] >= Fraction(str(target))]
    return (max(ok) + 1) / n if ok else 0.0


# ----------------------------------------------------------------------------------------------
# the inputs
# ----------------------------------------------------------------------------------------------
@st.composite
def model_outputs(draw, min_classes=1):
    """``(z, labels)``: logits with gaps up to 1,000 in float16 / float32 / float64, permuted
    duplicate rows (exact ties), near ties (the top logit moved by a few ulps), labels all correct,
    all wrong or random."""
    k = draw(st.integers(min_classes, 6))
    n = draw(st.integers(1, 24))
    dtype = DTYPES[draw(st.sampled_from(sorted(DTYPES)))]
    gap = draw(st.sampled_from([1.0, 8.0, 40.0, 120.0, 400.0, 1000.0]))
    base = draw(st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=n * k, max_size=n * k))
    z = (torch.tensor(base, dtype=torch.float64).reshape(n, k) * gap).to(dtype)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 16)))
    extra = []
    for _ in range(draw(st.integers(0, 4))):  # exact ties: a row with its columns permuted
        r = z[draw(st.integers(0, n - 1))]
        extra.append(r[torch.randperm(k, generator=g)])
    for _ in range(draw(st.integers(0, 3))):  # near ties: the top logit moved by a few ulps
        r = z[draw(st.integers(0, n - 1))].clone()
        top = int(r.argmax())
        steps = draw(st.integers(1, 3))
        direction = torch.tensor(math.inf if draw(st.booleans()) else -math.inf, dtype=dtype)
        for _ in range(steps):
            r[top] = next_toward(r[top], direction)
        assume(bool(torch.isfinite(r).all()))
        extra.append(r)
    if extra:
        z = torch.cat([z, torch.stack(extra)])
    n = z.shape[0]
    pred = z.to(torch.float64).argmax(1)
    mode = draw(st.sampled_from(['random', 'correct', 'wrong']))
    if mode == 'correct' or k == 1:
        labels = pred
    elif mode == 'wrong':
        labels = (pred + 1) % k
    else:
        labels = torch.randint(0, k, (n,), generator=g)
    return z, labels
