"""voxpop.data: tables in, cleaning, tokenizer + vocabulary, dense features, splits, Preprocessor.

numpy/pandas only (no TensorFlow, Ray, scikit-learn or onnxruntime), so serving stays light. The
names below are imported at first use, so `voxpop.data.errors` and `voxpop.data.options` (what
the command line needs to start) load no numpy or pandas.
"""

from voxpop import lazy_exports

_EXPORTS = {
    "VoxpopError": "voxpop.data.errors",
    "ReadReport": "voxpop.data.io",
    "Table": "voxpop.data.io",
    "iter_table_chunks": "voxpop.data.io",
    "read_table": "voxpop.data.io",
    "FORMAT_VERSION": "voxpop.data.preprocess",
    "INPUT_DTYPES": "voxpop.data.preprocess",
    "Preprocessor": "voxpop.data.preprocess",
    "Split": "voxpop.data.split",
    "split_rows": "voxpop.data.split",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
