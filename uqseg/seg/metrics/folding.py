"""Bounded-memory per-image results for the pixel-level histogram metrics.

Per-image entries in ``BaseMetric.results`` let mmengine's ``collect_results`` gather them across
ranks and drop the samples a distributed sampler repeats to pad the last batch. A fine histogram
(10000 bins, 160 kB) per image would make that memory grow with the data set, so
:class:`FoldingMetric` keeps the heavy part (a histogram) of an entry only until the next image
arrives on that rank and then adds it into a per-set running sum ("folding"), leaving a stub
with the light part (per-image scalars). Padding is only ever the *last* entry of a rank
(mmengine's ``DefaultSampler`` and torch's ``DistributedSampler`` append fewer than
``world_size`` repeated indices, i.e. at most one per rank, at the end), and the last entry is
never folded, so ``collect_results`` still drops exactly the padded samples. The folded sums are
gathered separately in :meth:`FoldingMetric.evaluate`; a folded entry that ``collect_results``
drops (another sampler) is detected and raises instead of silently double counting.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import torch
from mmengine.dist import collect_results, get_world_size, is_main_process
from mmengine.evaluator import BaseMetric


class FoldingMetric(BaseMetric):
    """A ``BaseMetric`` whose ``results`` entries are ``(set_name, light, heavy)``.

    ``heavy`` (a CPU tensor of per-set sums) is folded into ``self._folded[set_name]`` once a
    newer entry exists on this rank; :meth:`heavy_sums` returns per set the sum of every heavy
    part, folded or not, for ``compute_metrics``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._reset_folded()
        self._eval_folded: Optional[tuple[dict, dict]] = None

    def _reset_folded(self) -> None:
        self._folded: dict[str, torch.Tensor] = OrderedDict()
        self._n_folded: dict[str, int] = OrderedDict()

    def add_result(self, set_name: str, light, heavy: torch.Tensor) -> None:
        if self.results and self.results[-1][2] is not None:
            name, lt, hv = self.results[-1]
            if name in self._folded:
                self._folded[name] += hv
            else:
                self._folded[name] = hv.clone()
            self._n_folded[name] = self._n_folded.get(name, 0) + 1
            self.results[-1] = (name, lt, None)
        self.results.append((set_name, light, heavy))

    def evaluate(self, size: int) -> dict:
        mine = (dict(self._folded), dict(self._n_folded))
        if get_world_size() > 1:
            parts = collect_results([mine], get_world_size(), self.collect_device, tmpdir=self.collect_dir)
        else:
            parts = [mine]
        if is_main_process():
            sums: dict = OrderedDict()
            counts: dict = {}
            for folded, n in parts:
                for name, s in folded.items():
                    s = s.cpu()
                    sums[name] = sums[name] + s if name in sums else s.clone()
                for name, k in n.items():
                    counts[name] = counts.get(name, 0) + k
            self._eval_folded = (sums, counts)
        try:
            return super().evaluate(size)
        finally:
            self._eval_folded = None
            self._reset_folded()

    def heavy_sums(self, results: list) -> tuple[dict, dict]:
        """``({set: summed heavy tensor}, {set: [light, ...]})`` over ``results`` and the folded sums."""
        folded, n_folded = self._eval_folded if self._eval_folded is not None else (self._folded, self._n_folded)
        sums: dict = OrderedDict()
        lights: dict = OrderedDict()
        stubs: dict = {}
        for name, light, heavy in results:
            lights.setdefault(name, []).append(light)
            if heavy is None:
                stubs[name] = stubs.get(name, 0) + 1
            else:
                heavy = heavy.cpu()
                sums[name] = sums[name] + heavy if name in sums else heavy.clone()
        for name, s in folded.items():
            if stubs.get(name, 0) != n_folded.get(name, 0):
                raise RuntimeError(
                    f'{type(self).__name__}: {n_folded.get(name, 0)} folded image(s) of set {name!r} but '
                    f'{stubs.get(name, 0)} left after collecting results; the sampler dropped or padded '
                    'samples other than the last one of a rank, which this metric cannot undo')
            s = s.cpu()
            sums[name] = sums[name] + s if name in sums else s.clone()
            lights.setdefault(name, [])
        return sums, lights
