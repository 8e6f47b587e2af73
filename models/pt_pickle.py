"""The restricted unpickler of torch ``.pt`` checkpoints: a pickle in, inert data out, nothing run.

A ``.pt`` file is a zip holding ``<prefix>/data.pkl`` and the raw tensor storages
``<prefix>/data/<key>``; ``data.pkl`` is a pickle, so loading it with ``torch.load(weights_only=False)``
(what Ultralytics' loader does) runs whatever code it names. :class:`SafeUnpickler` reads it
instead, and is what checks 4 and 5 of the gate (:mod:`vigil.models.pt_gate`, whose
:func:`~vigil.models.pt_gate.check_pt` and :func:`~vigil.models.pt_gate.read_pt` are the entry
points) are made of. Feed it only a pickle the gate's opcode scan passed. This module also
defines the errors both raise, :class:`UltralyticsPtError` and :class:`UnsafeCheckpointError`
(both :class:`~vigil.models.errors.ModelError`: bad input, one line, exit 2), and the bounds
they enforce, :class:`PtLimits`.

- **The globals and calls**: ``find_class`` answers only from an explicit allow-list:
  ``collections.OrderedDict``, ``set``/``frozenset``, ``torch.Size``, the tensor rebuild helpers
  of ``torch._utils`` and the ``torch.*Storage`` types, torch dtype/device names (kept as
  strings), numpy scalars and arrays of plain numeric dtypes (``_reconstruct`` only as numpy
  pickles it, shape ``(0,)``), ``_codecs.encode`` for ``(str, 'latin1')`` (protocol-2 ``bytes``),
  ``pathlib`` paths (pure paths: no file is touched), ``getattr`` on stub classes
  (``Detect.forward``) and ``forward``/``forward_fuse`` of stub objects; and the classes of
  ``torch.nn.modules.*`` and ``ultralytics.*`` (public names, no private module), which become
  inert :class:`Stub` objects that only keep the state they are given. Such a class may be
  created only as pickle creates a module (``cls.__new__(cls)`` then its state), never *called*
  (that would run its constructor with the file's arguments), except the ``SimpleNamespace``
  types of training arguments, called with no arguments. Any other global (``os.system``,
  ``builtins.eval``, ...) raises :class:`UnsafeCheckpointError` before anything is called.
- **Storages and tensors, before allocating**: a storage's declared ``numel x itemsize`` must fit
  in its archive member's declared size; a tensor's offset, size and stride must stay inside its
  storage, and a tensor may not have more elements than its storage unless it is under 1 MiB (a
  stride-0 view of one element expands to anything: 507 bytes reached 1.5 GB); what the reader
  materialises is capped at twice the storages' bytes. With ``materialise=False`` (the gate's
  pass) no storage is read at all: storages and tensors are only described (:class:`TensorSpec`).

Tensors become numpy arrays (elements, in the storage's dtype, native byte order), modules
:class:`Stub` objects, ``getattr`` results :class:`StubAttr` markers.
"""

from __future__ import annotations

import collections
import math
import pathlib
import pickle
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.models.errors import ModelError

__all__ = [
    "UltralyticsPtError",
    "UnsafeCheckpointError",
    "PtLimits",
    "Stub",
    "StubAttr",
    "TensorSpec",
    "SafeUnpickler",
]

_MiB = 1 << 20


class UltralyticsPtError(ModelError):
    """A checkpoint we cannot read or convert; the message names the file and the layer."""


class UnsafeCheckpointError(UltralyticsPtError):
    """The checkpoint would run code or allocate without bound if loaded (nothing was run)."""


@dataclass(frozen=True)
class PtLimits:
    """Bounds :func:`~vigil.models.pt_gate.check_pt` enforces before allocating (the defaults fit
    every Ultralytics detection checkpoint, training ones included, with a wide margin: a YOLO11n
    ``data.pkl`` is 130 kB, 50 000 opcodes, 19 nested marks, a stack of 420 items)."""

    #: sum of the zip members' declared uncompressed sizes
    max_total_bytes: int = 2 << 30
    #: a member over ``ratio_floor_bytes`` may declare at most this many times its compressed size
    max_ratio: float = 50.0
    ratio_floor_bytes: int = _MiB
    max_members: int = 65536
    #: ``data.pkl``, uncompressed
    max_pickle_bytes: int = 32 * _MiB
    max_opcodes: int = 1_000_000
    max_memo: int = 1_000_000
    max_stack: int = 100_000
    max_marks: int = 100
    #: nesting of the unpickled object graph
    max_depth: int = 256
    #: a tensor may have more elements than its storage (a broadcast view) only below this size
    max_broadcast_bytes: int = _MiB
    max_tensor_dims: int = 16


# ---------------------------------------------------------------------------- inert stand-ins
class Stub:
    """Inert stand-in for a pickled ``torch.nn`` / ``ultralytics`` object.

    It keeps the state the pickle gives it in ``__dict__`` (for an ``nn.Module``: ``_modules``,
    ``_parameters``, ``_buffers`` and plain attributes such as ``f``, ``i``, ``k``...);
    ``__class__.__qualname__`` is the original class name and ``_stub_path`` its
    ``module.name``. Pickle creates a module with ``cls.__new__(cls)`` and then its state; a stub
    refuses to be created with arguments, and to be called (which would run the real class's
    constructor on the file's arguments) unless it stands for a ``SimpleNamespace``
    (``_stub_callable``), which pickle calls with no arguments.
    """

    _stub_path = "?"
    _stub_callable = False

    def __new__(cls, *args, **kwargs):
        if args or kwargs:
            raise UnsafeCheckpointError(
                f"the pickle creates {cls._stub_path} with arguments; a checkpoint creates modules without any"
            )
        return super().__new__(cls)

    def __init__(self):
        if not type(self)._stub_callable:
            raise UnsafeCheckpointError(
                f"the pickle calls {self._stub_path}(), which would run its constructor; "
                "a checkpoint creates modules without calling them"
            )

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            state, slots = state  # (dict, slots) form
            if slots:
                self.__dict__.update(slots)
        if state is None:
            return
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise UnsafeCheckpointError(
                f"the state of {self._stub_path} is a {type(state).__name__}, not a dict of attributes"
            )
        self.__dict__.update(state)

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
        callable_ = name.endswith("SimpleNamespace")
        cls = type(name, (Stub,), {"_stub_path": path, "_stub_callable": callable_, "__module__": __name__})
        _STUB_CLASSES[path] = cls
    return cls


class StubAttr:
    """What ``getattr(<stub class>, name)`` gives (e.g. a pickled ``Detect.forward``): a marker."""

    def __init__(self, owner: str, name: str):
        self.owner, self.name = owner, name

    def __repr__(self) -> str:
        return f"<stub attribute {self.owner}.{self.name}>"


class TensorSpec:
    """A tensor as :func:`~vigil.models.pt_gate.check_pt` sees it: shape and dtype, no data (nothing
    is read)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype):
        self.shape, self.dtype = shape, dtype

    def __setstate__(self, state):
        raise UnsafeCheckpointError("the pickle sets the state of a tensor, which a checkpoint never does")

    def __repr__(self) -> str:
        return f"<tensor {self.dtype} {list(self.shape)}>"


class _StorageSpec:
    """A storage in :func:`~vigil.models.pt_gate.check_pt`: dtype and element count (what the
    tensor checks need)."""

    def __init__(self, dtype: np.dtype, size: int):
        self.dtype, self.size, self.itemsize = dtype, size, dtype.itemsize


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
        self.itemsize = 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize

    def __call__(self, *args, **kwargs):
        raise UnsafeCheckpointError(f"torch.{self.name} is only accepted as a storage tag, not called")


# ---------------------------------------------------------------------------- allowed callables
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _int_tuple(value, what: str, limits: PtLimits) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > limits.max_tensor_dims:
        raise UltralyticsPtError(f"tensor {what} {str(value)[:80]} is not a tuple of at most {limits.max_tensor_dims}")
    if not all(_is_int(v) and v >= 0 for v in value):
        raise UltralyticsPtError(f"tensor {what} {str(value)[:80]} holds something other than integers >= 0")
    return tuple(int(v) for v in value)


def _no_hooks(hooks, what: str) -> None:
    """Torch attaches ``backward_hooks`` to the tensor (callables it runs later): only empty ones pass."""
    if hooks is not None and not (isinstance(hooks, dict) and not hooks):
        raise UnsafeCheckpointError(f"{what} carries backward hooks, which a checkpoint never does")


def _torch_size(*args):
    if len(args) > 1 or (args and not isinstance(args[0], (tuple, list))):
        raise UltralyticsPtError("torch.Size takes one list of integers")
    return _int_tuple(args[0] if args else (), "size", PtLimits())


def _check_view(storage, storage_offset, size, stride, limits: PtLimits) -> tuple[int, tuple, tuple, int]:
    """Offset, size and stride of a tensor over ``storage`` (anything with ``size``, ``itemsize``):
    inside it, and no more elements than it holds unless small. Returns them with the element count."""
    size, stride = _int_tuple(size, "size", limits), _int_tuple(stride, "stride", limits)
    if len(size) != len(stride) or not _is_int(storage_offset) or storage_offset < 0:
        raise UltralyticsPtError(f"tensor (offset {storage_offset}, size {size}, stride {stride}) is malformed")
    offset = int(storage_offset)
    n = math.prod(size)
    if n:
        last = offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= storage.size:
            raise UltralyticsPtError(
                f"tensor (offset {offset}, size {size}, stride {stride}) runs past its storage "
                f"of {storage.size} elements"
            )
        if n > storage.size and n * storage.itemsize > limits.max_broadcast_bytes:
            raise UnsafeCheckpointError(
                f"tensor of size {size} (stride {stride}) has {n} elements over a storage of {storage.size}: "
                f"expanding it would allocate {n * storage.itemsize} bytes"
            )
    return offset, size, stride, n


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None, *, limits=None
):
    """``torch._utils._rebuild_tensor_v2`` → a contiguous numpy array (elements, not bytes); a
    :class:`TensorSpec` when ``storage`` is only described
    (:func:`~vigil.models.pt_gate.check_pt`)."""
    limits = limits or PtLimits()
    if not isinstance(storage, (np.ndarray, _StorageSpec)):
        raise UltralyticsPtError(f"tensor storage is {type(storage).__name__}, expected a persistent storage")
    _no_hooks(backward_hooks, "a tensor")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, bool) for v in metadata.values())
    ):
        raise UnsafeCheckpointError("tensor metadata is not a dict of flags")
    offset, size, stride, n = _check_view(storage, storage_offset, size, stride, limits)
    if isinstance(storage, _StorageSpec):
        return TensorSpec(size, storage.dtype)
    if n == 0:
        return np.zeros(size, storage.dtype)
    base = storage[offset:]
    item = storage.itemsize
    return np.lib.stride_tricks.as_strided(base, size, tuple(st * item for st in stride), writeable=False).copy()


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    _no_hooks(backward_hooks, "a parameter")
    return data


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    _no_hooks(backward_hooks, "a parameter")
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    if not all(p is None or (isinstance(p, dict) and not p) for p in parts):
        raise UnsafeCheckpointError("a parameter carries Python attributes, which torch would set on it")
    return data


def _safe_getattr(obj, name, *default):
    """``getattr`` as checkpoints use it: on a stub class (``Pose.detect = Detect.forward`` is pickled
    as ``getattr(Detect, 'forward')``), or ``forward``/``forward_fuse`` of a stub object; anything
    else is refused."""
    if default or not isinstance(name, str) or not name.isidentifier() or name.startswith("__"):
        raise UnsafeCheckpointError(f"getattr(..., {str(name)[:40]!r}) is not allowed in a model checkpoint")
    if isinstance(obj, type) and issubclass(obj, Stub):
        return StubAttr(obj._stub_path, name)
    if isinstance(obj, Stub) and name in ("forward", "forward_fuse"):
        return StubAttr(obj._stub_path, name)
    raise UnsafeCheckpointError(f"getattr on {type(obj).__name__} is not allowed in a model checkpoint")


def _ordered_dict(items=()):
    if not isinstance(items, (list, tuple, dict)):
        raise UltralyticsPtError(f"OrderedDict of a {type(items).__name__}")
    return collections.OrderedDict(items)


def _set_of(kind):
    def build(items=()):
        if not isinstance(items, (list, tuple)):
            raise UltralyticsPtError(f"{kind.__name__} of a {type(items).__name__}")
        return kind(items)

    return build


def _torch_device(*args):
    if not 1 <= len(args) <= 2 or not all(isinstance(a, (str, int)) for a in args):
        raise UltralyticsPtError("torch.device takes a type and an index")
    return "device(" + ", ".join(map(str, args)) + ")"


def _latin1_encode(text, encoding="utf-8", *rest):
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``: ``(str, 'latin1')`` only."""
    if rest or not isinstance(text, str) or str(encoding).replace("-", "").lower() not in ("latin1", "utf8"):
        raise UnsafeCheckpointError("_codecs.encode is only accepted for (str, 'latin1') in a model checkpoint")
    return text.encode(encoding)


def _pure_path(kind):
    """``pathlib.PosixPath(*parts)`` → the pure path (no file system access; what torch builds is inert too)."""

    def build(*parts):
        if not all(isinstance(p, str) for p in parts):
            raise UltralyticsPtError("a pickled path holds something other than strings")
        return kind(*parts)

    return build


# numpy scalars and arrays (training metrics of newer checkpoints): plain numeric dtypes only
try:
    from numpy._core import multiarray as _np_multiarray  # numpy >= 2
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray


def _plain_dtype(dt) -> np.dtype:
    if (
        not isinstance(dt, np.dtype)
        or dt.kind not in "biufc"
        or dt.subdtype is not None
        or dt.names is not None
        or dt.itemsize > 16
    ):
        raise UnsafeCheckpointError(f"numpy dtype {str(dt)[:40]} is not a plain numeric type")
    return dt


def _np_dtype(obj, align=False, copy=False):
    """``numpy.dtype`` as numpy pickles it (``dtype('f8', False, True)``), numeric type codes only."""
    if not isinstance(obj, str) or len(obj) > 4:
        raise UnsafeCheckpointError(f"numpy.dtype({str(obj)[:40]!r}) is not allowed in a model checkpoint")
    try:
        dt = np.dtype(obj, align=bool(align), copy=bool(copy))
    except TypeError as exc:
        raise UltralyticsPtError(f"numpy.dtype({obj!r}): {exc}") from None
    return _plain_dtype(dt)


def _np_scalar(dtype, data=None):
    dt = _plain_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise UltralyticsPtError(f"numpy scalar of {dt} without its {dt.itemsize} bytes")
    return _np_multiarray.scalar(dt, data)


class _NdarrayTag:
    """``numpy.ndarray`` as a pickle names it: accepted only as ``_reconstruct``'s first argument."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayTag()


class _CheckedArray(np.ndarray):
    """An array rebuilt from a pickle: its state (``version, shape, dtype, is_fortran, rawdata``) must
    be a plain numeric dtype with exactly the bytes its shape needs."""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafeCheckpointError("numpy array state is not (version, shape, dtype, fortran, bytes)")
        _, shape, dtype, _, raw = state
        shape = _int_tuple(shape, "shape", PtLimits())
        dt = _plain_dtype(dtype)
        if not isinstance(raw, bytes) or len(raw) != math.prod(shape) * dt.itemsize:
            raise UltralyticsPtError(f"numpy array {shape} of {dt} does not come with its bytes")
        super().__setstate__(state)


def _np_reconstruct(subtype, shape, dtype):
    """``numpy.core.multiarray._reconstruct`` as numpy pickles it: ``(ndarray, (0,), b'b')``, then the state."""
    if subtype is not _NDARRAY or tuple(shape) != (0,) or dtype != b"b":
        raise UnsafeCheckpointError("numpy _reconstruct is only accepted as numpy pickles an array")
    return _np_multiarray._reconstruct(_CheckedArray, (0,), b"b")


#: (module, name) → object, the exact globals a checkpoint may reference (besides the stubs)
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch", "Size"): _torch_size,
    ("torch", "device"): _torch_device,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("_codecs", "encode"): _latin1_encode,
    ("numpy", "dtype"): _np_dtype,
    ("numpy", "ndarray"): _NDARRAY,
}
for _b in ("__builtin__", "builtins"):
    _ALLOWED[(_b, "set")] = _set_of(set)
    _ALLOWED[(_b, "frozenset")] = _set_of(frozenset)
    _ALLOWED[(_b, "getattr")] = _safe_getattr
for _n in _STORAGE_DTYPES:
    _ALLOWED[("torch", _n)] = _StorageType(_n)
# torch dtypes (newer checkpoints may carry them as plain attributes): kept as names
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
for _m in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_m, "scalar")] = _np_scalar
    _ALLOWED[(_m, "_reconstruct")] = _np_reconstruct
for _m in ("pathlib", "pathlib._local"):
    for _c, _kind in (("PosixPath", pathlib.PurePosixPath), ("WindowsPath", pathlib.PureWindowsPath)):
        _ALLOWED[(_m, _c)] = _ALLOWED[(_m, f"Pure{_c}")] = _pure_path(_kind)

# modules whose classes become Stub objects (nothing from them is imported or called)
_STUB_PREFIXES = ("torch.nn.modules.", "ultralytics.")
_STUB_EXACT = {("torch.nn", "Module"), ("torch.nn.parameter", "Parameter"), ("types", "SimpleNamespace")}


def _stub_name_ok(module: str, name: str) -> bool:
    if (module, name) in _STUB_EXACT:
        return True
    parts = module.split(".")
    return (
        module.startswith(_STUB_PREFIXES)
        and all(p.isidentifier() and not p.startswith("_") for p in parts)
        and name.isidentifier()
        and not name.startswith("_")
    )


# ---------------------------------------------------------------------------- the unpickler
class SafeUnpickler(pickle.Unpickler):
    """Unpickler for ``data.pkl`` of a torch zip checkpoint that executes nothing.

    ``find_class`` answers only from the allow-list (see the module docstring) and raises
    :class:`UnsafeCheckpointError` for anything else; ``persistent_load`` turns
    ``('storage', <torch.XStorage>, key, location, numel)`` into a 1-D numpy array read from
    ``<prefix>/data/<key>`` of the zip after checking that the member holds ``numel`` elements, or
    (``materialise=False``) into a description of it without reading anything. Feed it only a
    pickle that :func:`~vigil.models.pt_gate.check_pt`'s opcode scan passed
    (:func:`~vigil.models.pt_gate.read_pt` does).
    """

    def __init__(
        self,
        file,
        zf: zipfile.ZipFile | None,
        prefix: str,
        source: str = "<checkpoint>",
        big_endian: bool = False,
        *,
        materialise: bool = True,
        limits: PtLimits | None = None,
    ):
        super().__init__(file)
        self._zf, self._prefix, self._source, self._big = zf, prefix, source, big_endian
        self._materialise = materialise
        self._limits = limits or PtLimits()
        self._storages: dict[str, Any] = {}
        self.storage_bytes = 0
        self._tensor_bytes = 0
        #: what the pickle referenced: ``(module, name)`` of stub classes and ``(module, name, attr)`` of getattrs
        self.stub_classes: set[tuple[str, str]] = set()
        self.stub_attrs: set[tuple[str, str, str]] = set()
        self.globals: set[str] = set()

    def find_class(self, module: str, name: str):
        key = (module, name)
        self.globals.add(f"{module}.{name}")
        if key == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if key in (("builtins", "getattr"), ("__builtin__", "getattr")):
            return self._getattr
        if key in _ALLOWED:
            return _ALLOWED[key]
        if _stub_name_ok(module, name):
            self.stub_classes.add(key)
            return _stub_class(module, name)
        raise UnsafeCheckpointError(
            f"{self._source}: the pickle references {module}.{name}, which is not on the allow-list "
            "of a model checkpoint; refusing to load it (a .pt file is a pickle and could run code)"
        )

    def _getattr(self, obj, name, *default):
        out = _safe_getattr(obj, name, *default)
        module, _, cls = out.owner.rpartition(".")
        self.stub_attrs.add((module, cls, out.name))
        return out

    def _rebuild_tensor(self, storage, *args, **kwargs):
        out = _rebuild_tensor_v2(storage, *args, **kwargs, limits=self._limits)
        nbytes = math.prod(out.shape) * np.dtype(out.dtype).itemsize
        self._tensor_bytes += nbytes
        if self._tensor_bytes > 2 * self.storage_bytes + 64 * _MiB:
            raise UnsafeCheckpointError(
                f"the tensors would take {self._tensor_bytes} bytes, more than twice their storages "
                f"({self.storage_bytes} bytes): views expanding shared storages"
            )
        return out

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UltralyticsPtError(f"{self._source}: unexpected persistent id {str(pid)[:80]!r}")
        _, stype, key, location, numel = pid
        if not isinstance(stype, _StorageType):
            raise UltralyticsPtError(f"{self._source}: storage {str(key)[:40]!r} has unsupported type {stype!r}")
        if not isinstance(key, str) or not isinstance(location, str) or not _is_int(numel) or numel < 0:
            raise UltralyticsPtError(f"{self._source}: malformed storage id {str(pid)[:120]!r}")
        if key in self._storages:
            return self._storages[key]
        if self._zf is None:
            raise UltralyticsPtError(f"{self._source}: storage {key!r} referenced but no archive to read it from")
        member = f"{self._prefix}data/{key}"
        try:
            info = self._zf.getinfo(member)
        except KeyError:
            raise UltralyticsPtError(f"{self._source}: storage {key!r} missing from the archive") from None
        need = int(numel) * stype.itemsize
        if need > info.file_size:
            raise UnsafeCheckpointError(
                f"{self._source}: storage {key!r} declares {numel} x {stype.name[: -len('Storage')].lower()} "
                f"({need} bytes) but its archive member holds {info.file_size} bytes"
            )
        self.storage_bytes += need
        if stype.dtype == "bfloat16":
            dt = np.dtype(np.float32)
        else:
            dt = np.dtype(stype.dtype)
        if not self._materialise:
            arr = _StorageSpec(dt, int(numel))
        else:
            with self._zf.open(member) as f:
                raw = f.read(need)
            if len(raw) < need:
                raise UltralyticsPtError(
                    f"{self._source}: storage {key!r} is truncated ({len(raw)} bytes for {numel} x {dt})"
                )
            if stype.dtype == "bfloat16":
                u = np.frombuffer(raw, ">u2" if self._big else "<u2", int(numel))
                arr = (u.astype(np.uint32) << 16).view(np.float32)
            else:
                stored = dt.newbyteorder(">" if self._big else "<")
                arr = np.frombuffer(raw, stored, int(numel))
                if not stored.isnative:
                    arr = arr.astype(dt)
        self._storages[key] = arr
        return arr
