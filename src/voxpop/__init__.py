"""voxpop: tune many Keras text classifiers with Ray Tune, export the best to ONNX, and serve
soft/hard/weighted voting ensembles of them with ONNX Runtime.

Two helpers keep imports cheap where a heavy library is needed only by some calls (`voxpop --help`,
`voxpop spaces` and the tune driver never load pandas, TensorFlow or ONNX): `lazy_exports` gives a
package face whose names are imported at first use (PEP 562), `deferred` a module imported at its
first attribute. (The `lazy_loader` package does the first; a dozen lines do not need a dependency.)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

__version__ = "0.1.0"


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """The module `__getattr__` of a package face: name -> the module it is imported from.

    Example (in a package's `__init__.py`):
        __getattr__ = lazy_exports(__name__, {"read_table": "voxpop.data.io"})
    """

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)  # the next access is a plain attribute
        return value

    return __getattr__


class deferred:  # noqa: N801 (it stands for a module)
    """A module imported when one of its attributes is first read, e.g. `keras = deferred("keras")`:
    code that only declares things (a registry, defaults) runs without importing it."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<deferred module {self._name!r}>"
