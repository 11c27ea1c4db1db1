from .add_set_name import AddSetName
from .load_saliency_mask import LoadSaliencyMask, MaskFormatError, check_saliency_mask
from .reproducible_albu import ReproducibleAlbu
from .shapes_dataset import ShapesDataset
from .shapes_demo import OOD_INDEX, make_shapes_demo
from .sod_dataset import SOD_LAYOUTS, SampleLoadError, SODDataset

__all__ = ['SODDataset', 'SOD_LAYOUTS', 'SampleLoadError', 'LoadSaliencyMask', 'MaskFormatError',
           'check_saliency_mask', 'ReproducibleAlbu', 'ShapesDataset', 'OOD_INDEX', 'make_shapes_demo', 'AddSetName']
