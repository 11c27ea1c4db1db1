"""The registered metrics in two gloo processes, with DistributedSampler-like padding: the same
numbers as one process seeing every image once (the repeated sample is dropped)."""
import pytest
from mmseg.registry import METRICS

from tests.helpers.metrics import build, close, ood_samples, run
from tests.helpers.samples import evaluate_on_two_ranks

CONFIGS = [dict(type='PixelAccuracyMetric'),
           dict(type='PixelCalibrationMetric', n_bins=10, per_image=True, nll_brier=True),
           dict(type='PixelUncertaintyMetric'),
           dict(type='OODDetectionMetric', ood_sets=['DTD'])]


def test_two_process_gloo_equals_one_process():
    samples = ood_samples(seed=15, n_id=6, n_ood=3)  # 9 samples: rank 1 gets one padded repeat
    refs = [run(METRICS.build(cfg), samples) for cfg in CONFIGS]
    # the test is sharp: counting the repeated sample (samples[0]) twice changes the accuracies
    twice = run(build('PixelAccuracyMetric'), samples + samples[:1])
    assert any(not close(twice[k], refs[0][k], 1e-6) for k in refs[0])
    results = evaluate_on_two_ranks(CONFIGS, samples)
    for rank in (0, 1):
        for ref, got in zip(refs, results[rank]):
            assert got.keys() == ref.keys()
            for k in ref:
                assert close(got[k], ref[k], 1e-12), (rank, k, got[k], ref[k])
    assert set(results[0][0]) == {'ID1/PixelAcc', 'ID2/PixelAcc', 'DTD/PixelAcc'}
    assert results[0][0]['DTD/PixelAcc'] == pytest.approx(refs[0]['DTD/PixelAcc'], abs=1e-12)
