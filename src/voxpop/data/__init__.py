"""voxpop.data: tables in, cleaning, tokenizer + vocabulary, dense features, splits, Preprocessor.

numpy/pandas only (no TensorFlow, Ray, scikit-learn or onnxruntime), so serving stays light.
"""

from voxpop.data.errors import VoxpopError
from voxpop.data.io import ReadReport, Table, iter_table_chunks, read_table
from voxpop.data.preprocess import FORMAT_VERSION, INPUT_DTYPES, Preprocessor
from voxpop.data.split import Split, split_rows

__all__ = ["FORMAT_VERSION", "INPUT_DTYPES", "Preprocessor", "ReadReport", "Split", "Table", "VoxpopError",
           "iter_table_chunks", "read_table", "split_rows"]
