"""Reading detectron2 ``.pkl`` weights without executing anything the file asks for.

A pickle is a small program: each global it names is imported and may be called. detectron2
model-zoo files are pickled ``{"model": {name: numpy array}, "__author__": ..., ...}``, so the
only globals a genuine file needs are numpy's array, dtype and scalar reconstructors and a few
container types. :class:`RestrictedUnpickler` resolves exactly those and refuses every other
global before it is imported, which is what makes loading a downloaded file safe.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import importlib
import pickle
from pathlib import Path
from typing import IO, Any

from rem_core.errors import RemError

# numpy 2 moved numpy.core to numpy._core; files written by either version name either path.
_NUMPY_ALLOWED = {
    ("multiarray", "_reconstruct"),  # ndarray.__reduce__ (pickle protocols 0-4)
    ("multiarray", "scalar"),  # numpy scalars such as np.float32(1.0)
    ("numeric", "_frombuffer"),  # ndarray.__reduce_ex__ with pickle protocol 5
}
_NUMPY_TOP_LEVEL = {"ndarray", "dtype"}
_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "complex"}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Python 3 writes ``bytes`` in protocol 0-2 pickles as ``_codecs.encode(str, "latin1")``.

    Only that call is allowed: other codecs (zlib, base64, ...) have no place in a weights file.
    """
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(
            f"_codecs.encode is only allowed with latin1, not {encoding!r}"
        )
    return text.encode("latin1")


def _numpy_global(module: str, name: str) -> Any | None:
    if module == "numpy" and name in _NUMPY_TOP_LEVEL:
        import numpy

        return getattr(numpy, name)
    for prefix in ("numpy._core.", "numpy.core."):
        if module.startswith(prefix) and (module[len(prefix) :], name) in _NUMPY_ALLOWED:
            submodule = module[len(prefix) :]
            try:
                return getattr(importlib.import_module(f"numpy._core.{submodule}"), name)
            except ImportError:  # numpy < 2 has no numpy._core
                return getattr(importlib.import_module(f"numpy.core.{submodule}"), name)
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays, dicts and lists and refuses every other global.

    A refused global raises :class:`RemError` naming the file and ``module.name``; nothing from
    that module is imported.
    """

    def __init__(self, file: IO[bytes], path: str | Path | None = None) -> None:
        # latin1 lets pickles written by Python 2 (older model zoos) decode their byte strings.
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        found = _numpy_global(module, name)
        if found is not None:
            return found
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(builtins, name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise RemError(
            f"refusing to unpickle global {module}.{name}: a weights pickle may only hold numpy "
            "arrays, numbers, strings, lists and dicts",
            path=self._path,
        )

    def persistent_load(self, pid: Any) -> Any:
        raise RemError(
            "refusing to unpickle a persistent id: not a plain numpy weights pickle",
            path=self._path,
        )


def load_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; RemError on forbidden or bad data."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return RestrictedUnpickler(f, path).load()
    except RemError:
        raise
    except FileNotFoundError:
        raise RemError("no such file", path=path) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise RemError(f"not a readable weights pickle: {exc}", path=path) from None
