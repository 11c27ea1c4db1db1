"""uqseg's torch-only core: metric functions, binning, mergeable accumulators, scores and the math
of every method, as functions and ``nn.Module`` s on a channel dimension.

Imports torch and numpy only (and matplotlib in :mod:`.plots`), never mmseg, mmengine or
mmpretrain (``tests/test_layering.py`` checks it), so one implementation serves the mmseg front
end (:mod:`uqseg.seg`), per pixel, and the classification front end (:mod:`uqseg.cls`), per image.
Layout and rules: ``docs/architecture.md``.
"""
from . import (
               accumulators,
               aslp_rule,
               binning,
               checks,
               confidence_keys,
               dismax_loss,
               edl_loss,
               evidential,
               functional,
               layer_losses,
               ldl_loss,
               loss_reduction,
               member_statistics,
               output_files,
               output_layers,
               prototype_distance,
               ranking,
               sc_bce,
               scores,
               selective,
               temperature,
               temperature_buffer,
)
from .accumulators import CalibrationAccumulator, ConfidenceHistogram, ScoreSumAccumulator
from .dismax_loss import DisMaxLoss
from .edl_loss import EDLLoss
from .ldl_loss import LDLLoss
from .member_statistics import MemberStatistics, mutual_information
from .output_layers import DisMaxLayer, EDLLayer, IsoMaxPlusLayer, PrototypeDistanceLayer
from .sc_bce import SCBCELoss
from .selective import selective_report
from .temperature_buffer import TemperatureBuffer

__all__ = ['accumulators', 'aslp_rule', 'binning', 'checks', 'confidence_keys', 'dismax_loss', 'edl_loss',
           'evidential', 'functional',
           'layer_losses', 'ldl_loss', 'loss_reduction', 'member_statistics', 'MemberStatistics',
           'mutual_information', 'output_files', 'output_layers', 'prototype_distance',
           'ranking', 'sc_bce',
           'scores', 'selective', 'temperature', 'temperature_buffer', 'selective_report', 'TemperatureBuffer',
           'CalibrationAccumulator', 'ConfidenceHistogram', 'ScoreSumAccumulator', 'SCBCELoss',
           'EDLLoss', 'DisMaxLoss', 'LDLLoss', 'EDLLayer', 'PrototypeDistanceLayer', 'DisMaxLayer', 'IsoMaxPlusLayer']
