"""Checking and reading torch ``.pt`` checkpoints without running them: the one gate every ``.pt`` passes.

A ``.pt`` file is a zip holding ``<prefix>/data.pkl`` and the raw tensor storages
``<prefix>/data/<key>``; ``data.pkl`` is a pickle, so loading it with ``torch.load(weights_only=False)``
(what Ultralytics' loader does) runs whatever code it names. :func:`check_pt` is the gate: every
path of Vigil that touches a ``.pt`` calls it first, and nothing of a file that fails it runs.
The ``ultralytics`` detector backend and ``vigil models export`` call ``check_pt(path,
for_torch=True)`` before Ultralytics sees the file; the ``.pt`` → ONNX converter
(:mod:`vigil.models.ultralytics_pt`, hence the model cache) reads through :func:`read_pt`, which
calls :func:`check_pt` and then reads the file with the same restricted unpickler
(:class:`~vigil.models.pt_pickle.SafeUnpickler`). A refusal is an
:class:`~vigil.models.pt_pickle.UnsafeCheckpointError` or
:class:`~vigil.models.pt_pickle.UltralyticsPtError`, both :class:`~vigil.models.errors.ModelError`
(bad input: one line, exit 2), whose message starts with the file's path and gives the reason.

What is checked, in order, and why (this module holds the file-level checks 1 to 3, the content
checks 6 and 7 and the driver; checks 4 and 5 are the unpickler's, in :mod:`vigil.models.pt_pickle`):

1. **The container, as torch will read it.** The file starts with a zip local header at byte 0
   (otherwise ``torch.load`` falls back to its legacy format and unpickles the whole file, so
   such files are refused); every member lies in the folder of the first one, which is where torch
   looks for ``data.pkl``; no member name repeats, hides a NUL or climbs out (``..``); members are
   stored or deflated, not encrypted; the only pickle is ``data.pkl`` (a ``constants.pkl`` marks a
   TorchScript archive, which ``torch.load`` would hand to ``torch.jit.load``).
2. **Sizes, before anything is decompressed** (:class:`~vigil.models.pt_pickle.PtLimits`): the
   members' declared uncompressed sizes add up to at most ``max_total_bytes`` (2 GiB); a member
   over 1 MiB may not declare more than ``max_ratio`` (50) times its compressed size (a zip bomb:
   a 3.6 MB file of 3.4 GiB of zeros reached 4.2 GB); ``data.pkl`` is at most ``max_pickle_bytes``
   (32 MiB). Python's zip reader never returns more than a member declares, so these bound what
   is read.
3. **The pickle's opcodes** (``pickletools.genops``, which executes nothing): no length runs past
   the data (the C unpickler allocates a declared ``BINBYTES``/``BINUNICODE`` length before it
   reads); memo indices only grow one by one (a ``LONG_BINPUT`` index of 10^8 makes the unpickler
   allocate its memo table for it: a 255-byte file reached 1.5 GB before this check); at most
   ``max_opcodes`` opcodes, ``max_memo`` memo entries, ``max_stack`` stack items and ``max_marks``
   nested marks; none of the opcodes torch never writes (``INST``, ``OBJ``, ``PERSID``, ``EXT*``,
   protocol-5 buffers).
4. **The globals and calls**, by :class:`~vigil.models.pt_pickle.SafeUnpickler`: only an explicit
   allow-list; the classes of ``torch.nn.modules.*`` and ``ultralytics.*`` become inert
   :class:`~vigil.models.pt_pickle.Stub` objects, created as pickle creates a module, never
   called; any other global raises before anything is called.
5. **Storages and tensors, before allocating**, by the same unpickler: a storage must fit in its
   archive member, a tensor inside its storage, broadcast views are bounded, and what the reader
   materialises is capped at twice the storages' bytes. :func:`check_pt` reads no storage at all.
6. **What the result holds** (walked iteratively, at most ``max_depth`` deep): data only
   (containers, numbers, strings, paths, numpy scalars and arrays, tensors, stub objects and
   method markers); no class, function or other object as a value (a class stored as a module's
   attribute or hook would be called later by torch), and every ``*hook*`` table of a module empty
   (torch calls hooks on every forward pass).
7. With ``for_torch=True`` (the file goes to ``torch.load`` next), each stub class is looked up in
   the installed torch / ultralytics as torch's unpickler will: it must exist, be a class, be a
   ``torch.nn.Module``, a ``SimpleNamespace`` that keeps the built-in constructor, or a class of
   Ultralytics' loss helpers, and have no ``__del__`` (a finaliser would run on the file's data);
   every ``getattr`` must give a plain function.

What :func:`read_pt` returns is inert data (tensors as numpy arrays, modules as stubs). Used by
:mod:`vigil.models.ultralytics_pt` (the ``.pt`` → ONNX converter), ``vigil models export`` and
the ``ultralytics`` detector backend.
"""

from __future__ import annotations

import importlib
import inspect
import io
import os
import pathlib
import pickletools
import types
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.models.pt_pickle import (
    _STUB_EXACT,
    PtLimits,
    SafeUnpickler,
    Stub,
    StubAttr,
    TensorSpec,
    UltralyticsPtError,
    UnsafeCheckpointError,
    _plain_dtype,
)

__all__ = ["PtReport", "check_pt", "read_pt"]


@dataclass(frozen=True)
class PtReport:
    """What :func:`check_pt` found in a checkpoint that passed."""

    path: str
    prefix: str
    members: int
    pickle_bytes: int
    opcodes: int
    storages: int
    storage_bytes: int
    #: the globals the pickle references, ``module.name``, sorted
    globals: tuple[str, ...]


# ---------------------------------------------------------------------------- the checks
def _archive(path: str, limits: PtLimits) -> tuple[zipfile.ZipFile, str, int]:
    """Open the zip as torch will read it; return ``(zip, prefix, member count)`` or raise."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise UltralyticsPtError(f"cannot read it: {exc}") from None
    if head != b"PK\x03\x04":
        raise UltralyticsPtError(
            "not a torch zip checkpoint (it does not start with a zip header); legacy (torch < 1.6) pickle "
            "checkpoints are not supported: torch would unpickle the whole file"
        )
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise UltralyticsPtError(f"not a torch zip checkpoint ({exc})") from None
    try:
        infos = zf.infolist()
        if not infos or len(infos) > limits.max_members:
            raise UltralyticsPtError(f"the archive has {len(infos)} members (expected 1 to {limits.max_members})")
        if infos[0].header_offset != 0:
            raise UnsafeCheckpointError("the archive has data before its first member")
        first = infos[0].filename
        if "/" not in first:
            raise UltralyticsPtError(f"the first member {first!r} is not in a folder: not a torch checkpoint")
        prefix = first.split("/", 1)[0] + "/"
        seen: set[str] = set()
        total = 0
        for info in infos:
            name = info.filename
            parts = name.split("/")
            if (
                info.orig_filename != name
                or not name.startswith(prefix)
                or "\\" in name
                or any(ord(c) < 32 or ord(c) == 127 for c in name)
                or any(p in (".", "..") for p in parts)
                or "" in parts[:-1]
            ):
                raise UnsafeCheckpointError(f"archive member {info.orig_filename!r} is outside {prefix!r} or malformed")
            if name in seen:
                raise UnsafeCheckpointError(f"archive member {name!r} appears twice")
            seen.add(name)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
                raise UltralyticsPtError(f"archive member {name!r} is encrypted or compressed with an unusual method")
            if name.endswith(".pkl") and name != f"{prefix}data.pkl":
                raise UnsafeCheckpointError(
                    f"the archive holds {name!r}: only data.pkl may be a pickle (a constants.pkl marks a "
                    "TorchScript archive, which torch.load would hand to torch.jit.load)"
                )
            size = info.file_size
            if size > limits.ratio_floor_bytes and size > limits.max_ratio * max(info.compress_size, 1):
                raise UnsafeCheckpointError(
                    f"archive member {name!r} declares {size} bytes from {info.compress_size} compressed "
                    f"(more than {limits.max_ratio:g}:1): a zip bomb"
                )
            total += size
        if total > limits.max_total_bytes:
            raise UnsafeCheckpointError(
                f"the archive declares {total} bytes uncompressed, more than the limit of {limits.max_total_bytes}"
            )
        pkl = f"{prefix}data.pkl"
        if pkl not in seen:
            raise UltralyticsPtError(f"no {pkl} in the archive: not a torch checkpoint")
        if zf.getinfo(pkl).file_size > limits.max_pickle_bytes:
            raise UnsafeCheckpointError(
                f"{pkl} declares {zf.getinfo(pkl).file_size} bytes, more than the limit of {limits.max_pickle_bytes}"
            )
        return zf, prefix, len(infos)
    except BaseException:
        zf.close()
        raise


#: opcodes torch never writes: instantiation by name (protocol 0/1), text persistent ids,
#: the copyreg extension registry, out-of-band buffers
_FORBIDDEN_OPCODES = frozenset(
    {"INST", "OBJ", "PERSID", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER", "READONLY_BUFFER", "BYTEARRAY8"}
)
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def _scan_pickle(data: bytes, limits: PtLimits) -> int:
    """Walk the opcodes (nothing is built): lengths inside the data, memo indices growing one by
    one, bounded stack, marks and memo, no opcode torch never writes. Returns the opcode count."""
    stack = 0
    marks: list[int] = []
    memo = 0
    count = 0
    mark = pickletools.markobject
    try:
        for op, arg, pos in pickletools.genops(data):
            count += 1
            name = op.name
            if count > limits.max_opcodes:
                raise UnsafeCheckpointError(f"the pickle has more than {limits.max_opcodes} opcodes")
            if name in _FORBIDDEN_OPCODES:
                raise UnsafeCheckpointError(f"the pickle uses {name} (byte {pos}), which torch never writes")
            if name == "PROTO" and arg > 5:
                raise UltralyticsPtError(f"pickle protocol {arg} is not supported")
            if name == "FRAME" and arg > len(data) - pos:
                raise UltralyticsPtError(f"malformed pickle: a frame of {arg} bytes at byte {pos} runs past the data")
            if name in _PUTS:
                if arg > memo:
                    raise UnsafeCheckpointError(
                        f"the pickle stores memo entry {arg} (byte {pos}) after only {memo}: "
                        "the unpickler would allocate a memo table that large"
                    )
                memo += arg == memo
            elif name == "MEMOIZE":
                memo += 1
            if memo > limits.max_memo:
                raise UnsafeCheckpointError(f"the pickle has more than {limits.max_memo} memo entries")
            before, after = op.stack_before, op.stack_after
            if name == "MARK":
                marks.append(stack)
                if len(marks) > limits.max_marks:
                    raise UnsafeCheckpointError(f"the pickle nests more than {limits.max_marks} marks (byte {pos})")
            elif mark in before:
                if not marks:
                    raise UltralyticsPtError(f"malformed pickle: {name} without a mark (byte {pos})")
                stack = marks.pop() - before.index(mark) + len(after)
            else:
                stack += len(after) - len(before)
            if stack < 0:
                raise UltralyticsPtError(f"malformed pickle: stack underflow at {name} (byte {pos})")
            if stack > limits.max_stack:
                raise UnsafeCheckpointError(f"the pickle stacks more than {limits.max_stack} items (byte {pos})")
    except UltralyticsPtError:  # a ValueError too
        raise
    except ValueError as exc:  # a length past the data, a bad argument, no STOP
        raise UltralyticsPtError(f"malformed pickle: {exc}") from None
    return count


_LEAVES = (type(None), bool, int, float, complex, str, bytes, np.generic, pathlib.PurePath, StubAttr, TensorSpec)


def _audit(root: Any, limits: PtLimits) -> None:
    """The result holds data only; a module's hook tables are empty (iterative, ``max_depth`` deep)."""
    todo: list[tuple[Any, int, str]] = [(root, 0, "the checkpoint")]
    seen: set[int] = set()
    while todo:
        obj, depth, where = todo.pop()
        if isinstance(obj, _LEAVES):
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if depth > limits.max_depth:
            raise UnsafeCheckpointError(f"the checkpoint nests more than {limits.max_depth} levels ({where})")
        if isinstance(obj, np.ndarray):
            _plain_dtype(obj.dtype)
        elif isinstance(obj, np.dtype):
            _plain_dtype(obj)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                todo.append((k, depth + 1, where))
                todo.append((v, depth + 1, f"{where}[{str(k)[:40]!r}]"))
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo.extend((v, depth + 1, where) for v in obj)
        elif isinstance(obj, Stub):
            for k, v in obj.__dict__.items():
                if "hook" in k and v and not isinstance(v, bool):
                    raise UnsafeCheckpointError(
                        f"{obj._stub_path} ({where}) has {k} set: torch would call them; a checkpoint has none"
                    )
                todo.append((v, depth + 1, f"{where}.{k}"))
        else:
            what = obj._stub_path if isinstance(obj, type) and issubclass(obj, Stub) else type(obj).__name__
            raise UnsafeCheckpointError(
                f"{where} is {what!r}, not data: a checkpoint holds modules, tensors and values, "
                "never classes or functions (torch would hand them to code that calls them)"
            )


#: module and class renames Ultralytics applies while loading older checkpoints
_LEGACY_MODULES = {
    "ultralytics.yolo.utils": "ultralytics.utils",
    "ultralytics.yolo.v8": "ultralytics.models.yolo",
    "ultralytics.yolo.data": "ultralytics.data",
}
_LEGACY_NAMES = {
    ("ultralytics.nn.modules.block", "Silence"): ("torch.nn", "Identity"),
    ("ultralytics.nn.tasks", "YOLOv10DetectionModel"): ("ultralytics.nn.tasks", "DetectionModel"),
    ("ultralytics.utils.loss", "v10DetectLoss"): ("ultralytics.utils.loss", "E2EDetectLoss"),
}
#: plain (non-Module) classes of training checkpoints (the loss and its assigner)
_PLAIN_CLASS_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal")


def _real(module: str, name: str) -> Any:
    module, name = _LEGACY_NAMES.get((module, name), (module, name))
    module = _LEGACY_MODULES.get(module, module)
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise UnsafeCheckpointError(
            f"the pickle references {module}.{name}, which the installed libraries do not define ({exc})"
        ) from None


def _check_for_torch(classes: set[tuple[str, str]], attrs: set[tuple[str, str, str]]) -> None:
    """What torch's own unpickler will resolve the stub names to: classes that only keep state."""
    try:
        nn = importlib.import_module("torch.nn")
    except ImportError as exc:
        raise UltralyticsPtError(f"cannot check the checkpoint's classes against torch ({exc})") from None
    for module, name in sorted(classes):
        cls = _real(module, name)
        where = f"{module}.{name}"
        if not isinstance(cls, type):
            raise UnsafeCheckpointError(f"{where} is a {type(cls).__name__} in the installed libraries, not a class")
        if issubclass(cls, types.SimpleNamespace):
            builtin = (types.SimpleNamespace, object)
            if any(b not in builtin and ("__init__" in vars(b) or "__new__" in vars(b)) for b in cls.__mro__):
                raise UnsafeCheckpointError(f"{where} is a namespace with its own constructor")
        elif not (
            issubclass(cls, nn.Module) or (module, name) in _STUB_EXACT or cls.__module__ in _PLAIN_CLASS_MODULES
        ):
            raise UnsafeCheckpointError(
                f"{where} is neither a torch.nn.Module nor a namespace: not something a checkpoint holds"
            )
        fin = next((b for b in cls.__mro__ if "__del__" in vars(b)), None)
        if fin is not None:
            raise UnsafeCheckpointError(
                f"{where} has a finaliser ({fin.__module__}.{fin.__qualname__}.__del__), which would run on "
                "the checkpoint's data"
            )
    for module, name, attr in sorted(attrs):
        value = inspect.getattr_static(_real(module, name), attr, None)
        if not inspect.isfunction(value):
            raise UnsafeCheckpointError(f"{module}.{name}.{attr} is not a plain function in the installed libraries")


def _load(path: str, limits: PtLimits, *, materialise: bool, for_torch: bool = False) -> tuple[Any, PtReport]:
    zf, prefix, members = _archive(path, limits)
    with zf:
        name = f"{prefix}data.pkl"
        try:
            data = zf.read(name)
        except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, OSError...: a damaged archive
            raise UltralyticsPtError(f"cannot read {name}: {type(exc).__name__}: {exc}") from None
        opcodes = _scan_pickle(data, limits)
        big = False
        order = f"{prefix}byteorder"
        if order in zf.namelist() and zf.getinfo(order).file_size <= 16:
            big = zf.read(order).strip() == b"big"
        up = SafeUnpickler(io.BytesIO(data), zf, prefix, path, big, materialise=materialise, limits=limits)
        try:
            obj = up.load()
        except UltralyticsPtError:
            raise
        except RecursionError:
            raise UnsafeCheckpointError(f"{name} nests too deeply") from None
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad checkpoint
            raise UltralyticsPtError(f"cannot unpickle {name}: {type(exc).__name__}: {exc}") from None
        _audit(obj, limits)
        if for_torch:
            _check_for_torch(up.stub_classes, up.stub_attrs)
    report = PtReport(
        path, prefix, members, len(data), opcodes, len(up._storages), up.storage_bytes, tuple(sorted(up.globals))
    )
    return obj, report


def _named(path: str, exc: UltralyticsPtError) -> UltralyticsPtError:
    msg = str(exc)
    return exc if msg.startswith(path) else type(exc)(f"{path}: {msg}")


def check_pt(path: str | os.PathLike, *, for_torch: bool = False, limits: PtLimits | None = None) -> PtReport:
    """The gate every ``.pt`` passes before any library touches it (see the module docstring).

    Runs the container, size, opcode, allow-list, tensor and content checks without reading any
    tensor data, so its memory stays small whatever the file declares. ``for_torch=True`` (the
    file goes to ``torch.load`` / Ultralytics next) also checks the stub classes against the
    installed torch and ultralytics. Raises :class:`UnsafeCheckpointError` or
    :class:`UltralyticsPtError` (both :class:`~vigil.models.errors.ModelError`) whose message starts
    with the path; returns a :class:`PtReport` when the file passes.
    """
    path = str(path)
    try:
        return _load(path, limits or PtLimits(), materialise=False, for_torch=for_torch)[1]
    except UltralyticsPtError as exc:
        raise _named(path, exc) from None


def read_pt(path: str | os.PathLike, *, limits: PtLimits | None = None) -> Any:
    """Unpickle a torch zip checkpoint safely; tensors become numpy arrays, modules :class:`Stub`.

    Calls :func:`check_pt` first, then reads the file with the same checks (so a file replaced
    in between is bounded too); the arrays take at most about the storages' size."""
    path = str(path)
    limits = limits or PtLimits()
    check_pt(path, limits=limits)
    try:
        return _load(path, limits, materialise=True)[0]
    except UltralyticsPtError as exc:
        raise _named(path, exc) from None
