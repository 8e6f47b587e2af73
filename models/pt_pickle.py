"""Reading torch ``.pt`` checkpoints without torch: a restricted unpickler.

A ``.pt`` file is a zip holding ``<prefix>/data.pkl`` and the raw tensor storages
``<prefix>/data/<key>``; ``data.pkl`` is a pickle, so it could run code. :class:`SafeUnpickler`
resolves only an explicit allow-list of globals: ``collections.OrderedDict``,
``set``/``frozenset``, ``torch.Size``, the tensor rebuild helpers of ``torch._utils`` and the
``torch.*Storage`` types (tensors become numpy arrays: elements, in the storage's dtype,
native byte order), torch dtype/device names (kept as strings), numpy scalar/array
constructors, ``_codecs.encode`` for ``(str, 'latin1')`` (protocol-2 ``bytes``), ``getattr`` on
stubs only, and the classes of ``torch.nn.modules.*`` and ``ultralytics.*``, which become inert
:class:`Stub` objects that only keep the state they are given (``__dict__``). Any other global
(``os.system``, ``builtins.eval``, ...) raises :class:`UnsafeCheckpointError` before anything
is called. Used by :mod:`vigil.models.ultralytics_pt` (the ``.pt`` → ONNX converter).
"""

from __future__ import annotations

import collections
import os
import pickle
import zipfile
from typing import Any

import numpy as np

__all__ = ["UltralyticsPtError", "UnsafeCheckpointError", "Stub", "StubAttr", "SafeUnpickler", "read_pt"]


class UltralyticsPtError(ValueError):
    """A checkpoint we cannot read or convert; the message names the file and the layer."""


class UnsafeCheckpointError(UltralyticsPtError):
    """The checkpoint's pickle references a global outside the allow-list (nothing was run)."""


# ---------------------------------------------------------------------------- reading
class Stub:
    """Inert stand-in for a pickled ``torch.nn`` / ``ultralytics`` object.

    It keeps the state the pickle gives it in ``__dict__`` (for an ``nn.Module``: ``_modules``,
    ``_parameters``, ``_buffers`` and plain attributes such as ``f``, ``i``, ``k``...);
    ``__class__.__qualname__`` is the original class name and ``_stub_path`` its
    ``module.name``. Constructor arguments are kept in ``_stub_args`` and never interpreted.
    """

    _stub_path = "?"

    def __init__(self, *args, **kwargs):
        self.__dict__["_stub_args"] = args
        if kwargs:
            self.__dict__["_stub_kwargs"] = kwargs

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            state, slots = state  # (dict, slots) form
            if slots:
                self.__dict__.update(slots)
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_stub_state"] = state

    def __getattr__(self, name: str):
        # nn.Module attribute lookup: _parameters, then _buffers, then _modules
        if name.startswith("__"):
            raise AttributeError(name)
        d = self.__dict__
        for bucket in ("_parameters", "_buffers", "_modules"):
            b = d.get(bucket)
            if isinstance(b, dict) and name in b:
                return b[name]
        raise AttributeError(f"{type(self).__qualname__} has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<stub {self._stub_path}>"


_STUB_CLASSES: dict[str, type] = {}


def _stub_class(module: str, name: str) -> type:
    path = f"{module}.{name}"
    cls = _STUB_CLASSES.get(path)
    if cls is None:
        cls = type(name, (Stub,), {"_stub_path": path, "__module__": __name__})
        _STUB_CLASSES[path] = cls
    return cls


# numpy dtypes of the torch storage types (BFloat16 is widened by hand)
_STORAGE_DTYPES = {
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """What ``torch.<X>Storage`` resolves to: a dtype tag for ``persistent_load``."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    def __call__(self, *args, **kwargs):
        raise UnsafeCheckpointError(f"torch.{self.name} is only accepted as a storage tag, not called")


def _torch_size(*args):
    return tuple(int(v) for v in (args[0] if args else ()))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` → a contiguous numpy array (elements, not bytes)."""
    if not isinstance(storage, np.ndarray):
        raise UltralyticsPtError(f"tensor storage is {type(storage).__name__}, expected a persistent storage")
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    n = int(np.prod(size)) if size else 1
    if n == 0:
        return np.zeros(size, storage.dtype)
    last = int(storage_offset) + sum((s - 1) * st for s, st in zip(size, stride))
    if storage_offset < 0 or last >= storage.size or any(st < 0 for st in stride):
        raise UltralyticsPtError(
            f"tensor (offset {storage_offset}, size {size}, stride {stride}) runs past its storage "
            f"of {storage.size} elements"
        )
    base = storage[int(storage_offset) :]
    item = storage.itemsize
    return np.lib.stride_tricks.as_strided(base, size, tuple(st * item for st in stride), writeable=False).copy()


class StubAttr:
    """What ``getattr(<stub class>, name)`` gives (e.g. a pickled ``Detect.forward``): a marker."""

    def __init__(self, owner: str, name: str):
        self.owner, self.name = owner, name

    def __repr__(self) -> str:
        return f"<stub attribute {self.owner}.{self.name}>"


def _safe_getattr(obj, name, *default):
    """``getattr`` restricted to stub classes/objects (newer checkpoints pickle e.g.
    ``Pose.detect = Detect.forward`` as ``getattr(Detect, 'forward')``); anything else is refused."""
    if (isinstance(obj, type) and issubclass(obj, Stub)) or isinstance(obj, Stub):
        path = obj._stub_path
        return StubAttr(path, str(name))
    raise UnsafeCheckpointError(f"getattr on {type(obj).__name__} is not allowed in a model checkpoint")


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    return data


#: (module, name) → object, the exact globals a checkpoint may reference (besides the stubs)
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("builtins", "frozenset"): frozenset,
    ("torch", "Size"): _torch_size,
    ("__builtin__", "getattr"): _safe_getattr,
    ("builtins", "getattr"): _safe_getattr,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
}
for _n in _STORAGE_DTYPES:
    _ALLOWED[("torch", _n)] = _StorageType(_n)
# torch dtypes / devices (newer checkpoints may carry them as plain attributes): kept as names
for _n in (
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "half",
    "float",
    "double",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
):
    _ALLOWED[("torch", _n)] = f"torch.{_n}"
_ALLOWED[("torch", "device")] = lambda *a: "device(" + ", ".join(map(str, a)) + ")"
# numpy scalars and arrays (training metrics of newer checkpoints): constructors only, no code
try:
    from numpy._core import multiarray as _np_multiarray  # numpy >= 2
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray
for _m in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_m, "scalar")] = _np_multiarray.scalar
    _ALLOWED[(_m, "_reconstruct")] = _np_multiarray._reconstruct
_ALLOWED[("numpy", "dtype")] = np.dtype


def _latin1_encode(text, encoding="utf-8", *rest):
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``: ``(str, 'latin1')`` only."""
    if not isinstance(text, str) or str(encoding).replace("-", "").lower() not in ("latin1", "utf8"):
        raise UnsafeCheckpointError("_codecs.encode is only accepted for (str, 'latin1') in a model checkpoint")
    return text.encode(encoding)


_ALLOWED[("_codecs", "encode")] = _latin1_encode
_ALLOWED[("numpy", "ndarray")] = np.ndarray
# modules whose classes become Stub objects (nothing from them is imported or called)
_STUB_PREFIXES = ("torch.nn.modules.", "ultralytics.")
_STUB_EXACT = {("torch.nn", "Module"), ("torch.nn.parameter", "Parameter"), ("types", "SimpleNamespace")}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler for ``data.pkl`` of a torch zip checkpoint that executes nothing.

    ``find_class`` answers only from the allow-list (see the module docstring) and raises
    :class:`UnsafeCheckpointError` for anything else; ``persistent_load`` turns
    ``('storage', <torch.XStorage>, key, location, numel)`` into a 1-D numpy array read
    from ``<prefix>/data/<key>`` of the zip.
    """

    def __init__(
        self, file, zf: zipfile.ZipFile | None, prefix: str, source: str = "<checkpoint>", big_endian: bool = False
    ):
        super().__init__(file)
        self._zf, self._prefix, self._source, self._big = zf, prefix, source, big_endian
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in _ALLOWED:
            return _ALLOWED[key]
        if key in _STUB_EXACT or (
            module.startswith(_STUB_PREFIXES) and name.isidentifier() and not name.startswith("_")
        ):
            return _stub_class(module, name)
        raise UnsafeCheckpointError(
            f"{self._source}: the pickle references {module}.{name}, which is not on the allow-list "
            "of a model checkpoint; refusing to load it (a .pt file is a pickle and could run code)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UltralyticsPtError(f"{self._source}: unexpected persistent id {str(pid)[:80]!r}")
        _, stype, key, _location, numel = pid[:5]
        if not isinstance(stype, _StorageType):
            raise UltralyticsPtError(f"{self._source}: storage {key!r} has unsupported type {stype!r}")
        key = str(key)
        if key in self._storages:
            return self._storages[key]
        if self._zf is None:
            raise UltralyticsPtError(f"{self._source}: storage {key!r} referenced but no archive to read it from")
        try:
            raw = self._zf.read(f"{self._prefix}data/{key}")
        except KeyError:
            raise UltralyticsPtError(f"{self._source}: storage {key!r} missing from the archive") from None
        if stype.dtype == "bfloat16":
            u = np.frombuffer(raw, ">u2" if self._big else "<u2")
            arr = (u.astype(np.uint32) << 16).view(np.float32)
        else:
            dt = np.dtype(stype.dtype).newbyteorder(">" if self._big else "<")
            if len(raw) < int(numel) * dt.itemsize:
                raise UltralyticsPtError(
                    f"{self._source}: storage {key!r} is truncated ({len(raw)} bytes for {numel} x {dt})"
                )
            arr = np.frombuffer(raw, dt, int(numel)).astype(dt.newbyteorder("="))
        self._storages[key] = arr
        return arr


def read_pt(path: str | os.PathLike) -> Any:
    """Unpickle a torch zip checkpoint safely; tensors become numpy arrays, modules :class:`Stub`."""
    path = str(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UltralyticsPtError(
            f"{path}: not a torch zip checkpoint ({exc}); legacy (torch < 1.6) pickle checkpoints are not supported"
        ) from None
    with zf:
        pkl = [n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        if not pkl:
            raise UltralyticsPtError(f"{path}: no data.pkl in the archive: not a torch checkpoint")
        name = min(pkl, key=len)
        prefix = name[: -len("data.pkl")]
        big = False
        if f"{prefix}byteorder" in zf.namelist():
            big = zf.read(f"{prefix}byteorder").strip() == b"big"
        with zf.open(name) as f:
            try:
                return SafeUnpickler(f, zf, prefix, path, big).load()
            except UltralyticsPtError:
                raise
            except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad checkpoint
                raise UltralyticsPtError(f"{path}: cannot unpickle {name}: {type(exc).__name__}: {exc}") from None
