"""Read a pickle of plain data without running code from it.

``pickle.load`` calls whatever a file names: a downloaded ``*.pkl`` can run any command on the user's machine. Some
datasets still ship as pickles (GMTNet's ``jarvis_diele_piezo.pkl``: a list of dicts of numbers, strings and
lists), so :func:`load_plain_pickle` reads them with an unpickler that resolves only the few globals such data
needs — numpy arrays, numpy scalars and dtypes, ``set``/``frozenset``/``complex``, ``OrderedDict``, and
``_codecs.encode`` for the bytes of old protocols — and raises
:class:`UnsafePickleError` naming the first anything else (a class, a function, ``os.system``), before it is
called. Containers, numbers and strings are pickle opcodes and need no global.

A pandas DataFrame needs pandas' internals and is refused too: convert such a file once, in a Python session you
trust, with ``pd.read_pickle(path).to_dict("records")`` written to JSON.
"""

from __future__ import annotations

import _compat_pickle
import os
import pickle
from typing import Any, BinaryIO

#: ``(module, name)`` of every global a plain-data pickle may name; both numpy 1.x and 2.x spellings
ALLOWED_GLOBALS = frozenset(
    {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # bytes in protocol 0-2 pickles (as in torch's weights_only loader)
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global that plain data does not need (it could run code when loaded)."""


class PlainDataUnpickler(pickle.Unpickler):
    """:class:`pickle.Unpickler` that resolves only :data:`ALLOWED_GLOBALS`."""

    def __init__(self, file: BinaryIO, source: str = "the pickle") -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names of protocols 0-2 (``__builtin__.set``), mapped as the standard unpickler maps them
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.source}: refusing to load {module}.{name}; only lists, dicts, numbers, strings and numpy arrays "
            "are read from a pickle (loading other objects can run code). If you trust the file, convert it to JSON "
            "in a separate Python session first."
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: refusing a persistent reference ({str(pid)[:60]!r})")


def load_plain_pickle(path: str | os.PathLike) -> Any:
    """The plain data in the pickle at ``path``; :class:`UnsafePickleError` for anything that could run code."""
    with open(path, "rb") as fh:
        try:
            return PlainDataUnpickler(fh, str(path)).load()
        except UnsafePickleError:
            raise
        except Exception as exc:  # truncated, not a pickle, or a refused reduce on an allowed type
            raise pickle.UnpicklingError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})"[:300]) from exc
