"""The ``.pt`` gate (:func:`vigil.models.pt_gate.check_pt`): code in a checkpoint never runs, and
a file that declares absurd sizes is refused before anything is allocated.

The malicious files are written opcode by opcode (a pickle writer would refuse to name
``os.system`` with a fake module, and would never write a memo index of 10^8); the bombs'
peak RSS is measured in a child process (its own high-water mark, ``VmHWM``, under a 3 GiB
address-space cap so that a regression fails instead of exhausting the machine).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np
import pytest

from vigil.errors import UserError
from vigil.models.errors import ModelError
from vigil.models.pt_gate import check_pt, read_pt
from vigil.models.pt_pickle import PtLimits, TensorSpec, UltralyticsPtError, UnsafeCheckpointError

_MiB = 1 << 20
BOMB_MIB = 3500  # 3.4 GiB of zeros from 3.6 MB


# ---------------------------------------------------------------------------- opcodes
def s(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def i(v: int) -> bytes:
    if -(2**31) <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def g(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def call(func: bytes, *args: bytes) -> bytes:
    return func + tup(*args) + b"R"


def dct(items: dict[bytes, bytes]) -> bytes:
    return b"}(" + b"".join(k + v for k, v in items.items()) + b"u"


def new(cls: bytes, state: bytes) -> bytes:
    """``cls.__new__(cls)`` and its state, as pickle creates a module."""
    return cls + b")\x81" + state + b"b"


def odict(items: dict[bytes, bytes]) -> bytes:
    pairs = b"".join(b"](" + k + v + b"e" for k, v in items.items())
    return call(g("collections", "OrderedDict"), b"](" + pairs + b"e")


def pkl(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def tensor(key: str, numel: int, size: tuple, stride: tuple, stype: str = "FloatStorage") -> bytes:
    storage = tup(s("storage"), g("torch", stype), s(key), s("cpu"), i(numel)) + b"Q"
    return call(
        g("torch._utils", "_rebuild_tensor_v2"),
        storage,
        i(0),
        tup(*map(i, size)),
        tup(*map(i, stride)),
        b"\x89",
        odict({}),
    )


def write_pt(path, data_pkl: bytes, storages: dict[str, bytes] | None = None, extra=(), prefix: str = "archive"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{prefix}/data.pkl", data_pkl)
        z.writestr(f"{prefix}/byteorder", "little")
        for k, v in (storages or {}).items():
            z.writestr(f"{prefix}/data/{k}", v)
        for name, data in extra:
            z.writestr(name, data)
    return path


def raw_zip(path, members: list[tuple[str, bytes, int, int]]):
    """A zip written by hand: ``(name, data, method, declared uncompressed size)``; the CRC is
    right for stored members and 0 for the bombs (a reader meets it only after inflating all)."""
    out, central = bytearray(), bytearray()
    for name, data, method, usize in members:
        n = name.encode()
        crc = zlib.crc32(data) if method == 0 else 0
        off = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), usize, len(n), 0) + n
        out += data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            method,
            0,
            0x21,
            crc,
            len(data),
            usize,
            len(n),
            0,
            0,
            0,
            0,
            0,
            off,
        )
        central += n
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + eocd))
    return path


def deflate_bomb(head: bytes, mib: int, tail: bytes = b"") -> bytes:
    """A raw deflate stream of ``head``, ``mib`` MiB of zeros and ``tail``, about 1 kB per MiB:
    after a full flush every MiB of zeros compresses to the same bytes, so it is repeated."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = co.compress(head) + co.flush(zlib.Z_FULL_FLUSH)
    block = co.compress(bytes(_MiB)) + co.flush(zlib.Z_FULL_FLUSH)
    return first + block * mib + co.compress(tail) + co.flush()


def evil_pt(path, marker) -> str:
    """A checkpoint whose pickle is ``os.system('touch <marker>')``."""
    return str(write_pt(path, pkl(call(g("os", "system"), s(f"touch {marker}")))))


# ---------------------------------------------------------------------------- code never runs
@pytest.mark.parametrize(
    "body, message",
    [
        (lambda m: call(g("os", "system"), s(f"touch {m}")), "the pickle references os.system, which is not on"),
        (lambda m: call(g("posix", "system"), s(f"touch {m}")), "references posix.system"),
        (
            lambda m: call(g("builtins", "eval"), s(f"__import__('os').system('touch {m}')")),
            "references builtins.eval",
        ),
        (lambda m: call(g("subprocess", "Popen"), tup(s("touch"), s(str(m)))), "references subprocess.Popen"),
        # protocol 4 names the global from the stack
        (
            lambda m: s("builtins") + s("exec") + b"\x93" + tup(s(f"open('{m}', 'w')")) + b"R",
            "references builtins.exec",
        ),
        # protocol 0/1 instantiation by name (torch never writes it)
        (lambda m: b"(" + s(f"touch {m}") + b"ios\nsystem\n", "uses INST"),
        # calling an allowed module class would run its constructor on the file's arguments
        (lambda m: call(g("ultralytics.engine.model", "Model"), s(str(m))), "creates ultralytics.engine.model.Model"),
        (lambda m: call(g("ultralytics.nn.tasks", "DetectionModel")), "calls ultralytics.nn.tasks.DetectionModel()"),
        # a private module (``ultralytics.__main__`` would run the Ultralytics CLI on import)
        (lambda m: new(g("ultralytics.__main__", "X"), b"N"), "references ultralytics.__main__.X"),
        (lambda m: call(g("builtins", "getattr"), s("os"), s("system")), "getattr on str is not allowed"),
        (lambda m: call(g("_codecs", "encode"), s("x"), s("zlib")), "_codecs.encode is only accepted"),
    ],
    ids=[
        "os.system",
        "posix.system",
        "eval",
        "Popen",
        "stack_global",
        "inst",
        "call-args",
        "call",
        "private",
        "getattr",
        "codecs",
    ],
)
def test_code_in_a_checkpoint_is_refused_before_it_runs(tmp_path, body, message):
    marker = tmp_path / "pwned"
    path = write_pt(tmp_path / "evil.pt", pkl(body(marker)))
    for check in (check_pt, read_pt, lambda p: check_pt(p, for_torch=True)):
        with pytest.raises(UnsafeCheckpointError) as err:
            check(path)
        assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert not marker.exists()
    assert isinstance(err.value, ModelError) and isinstance(err.value, UserError)  # one line, exit 2


def test_the_payload_is_real(tmp_path):
    """Control: unpickled by a plain unpickler, the test payload does run."""
    path = evil_pt(tmp_path / "evil.pt", tmp_path / "pwned")
    with zipfile.ZipFile(path) as z:
        pickle.loads(z.read("archive/data.pkl"))
    assert (tmp_path / "pwned").exists()


def test_the_refusal_names_the_file_and_the_global(tmp_path):
    path = evil_pt(tmp_path / "evil.pt", tmp_path / "pwned")
    with pytest.raises(ModelError) as err:
        check_pt(path)
    assert str(err.value) == (
        f"{path}: the pickle references os.system, which is not on the allow-list of a model checkpoint; "
        "refusing to load it (a .pt file is a pickle and could run code)"
    )


def test_classes_functions_and_hooks_are_not_data(tmp_path):
    conv = g("ultralytics.nn.modules.conv", "Conv")
    cases = {
        # a class kept as a value: torch would hand the real one to code that calls it
        "class": (dct({s("act"): conv}), "the checkpoint['act'] is 'ultralytics.nn.modules.conv.Conv', not data"),
        "function": (dct({s("f"): g("collections", "OrderedDict")}), "the checkpoint['f'] is 'function', not data"),
        # torch calls a module's forward hooks on every forward pass
        "hook": (
            new(
                conv, dct({s("_forward_pre_hooks"): odict({i(0): call(g("builtins", "getattr"), conv, s("forward"))})})
            ),
            "ultralytics.nn.modules.conv.Conv (the checkpoint) has _forward_pre_hooks set",
        ),
        "backward_hooks": (
            call(
                g("torch._utils", "_rebuild_parameter"),
                tensor("0", 1, (1,), (1,)),
                b"\x88",
                odict({i(0): call(g("builtins", "getattr"), conv, s("forward"))}),
            ),
            "a parameter carries backward hooks",
        ),
        "state": (new(conv, s("not a dict")), "the state of ultralytics.nn.modules.conv.Conv is a str"),
        "tensor_state": (tensor("0", 1, (1,), (1,)) + dct({s("x"): i(1)}) + b"b", "sets the state of a tensor"),
    }
    for name, (body, message) in cases.items():
        path = write_pt(tmp_path / f"{name}.pt", pkl(body), {"0": bytes(4)})
        with pytest.raises(UnsafeCheckpointError) as err:
            check_pt(path)
        assert message in str(err.value), (name, str(err.value))


def test_container_tricks_are_refused(tmp_path):
    ok = pkl(dct({s("x"): i(1)}))
    evil = pkl(call(g("os", "system"), s("true")))
    cases = {}
    # a legacy (non-zip) file: torch.load would unpickle all of it
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(evil)
    cases[legacy] = "does not start with a zip header"
    # a pickle in front of a valid zip: Python's zipfile opens it, torch.load unpickles the front
    front = tmp_path / "front.pt"
    write_pt(tmp_path / "inner.pt", ok)
    front.write_bytes(evil + (tmp_path / "inner.pt").read_bytes())
    cases[front] = "does not start with a zip header"
    # torch reads data.pkl in the folder of the first member, whatever else the archive holds
    cases[write_pt(tmp_path / "two.pt", evil, prefix="evil", extra=[("a/data.pkl", ok)])] = (
        "archive member 'a/data.pkl' is outside 'evil/'"
    )
    cases[write_pt(tmp_path / "ts.pt", ok, extra=[("archive/constants.pkl", evil)])] = "TorchScript archive"
    cases[write_pt(tmp_path / "dot.pt", ok, extra=[("archive/../x", b"")])] = "outside 'archive/' or malformed"
    dup = tmp_path / "dup.pt"
    raw_zip(dup, [("archive/data.pkl", ok, 0, len(ok)), ("archive/data.pkl", evil, 0, len(evil))])
    cases[dup] = "archive member 'archive/data.pkl' appears twice"
    nul = tmp_path / "nul.pt"
    raw_zip(nul, [("archive/data.pkl\0x", ok, 0, len(ok)), ("archive/data.pkl", evil, 0, len(evil))])
    cases[nul] = "is outside 'archive/' or malformed"
    for path, message in cases.items():
        with pytest.raises(UltralyticsPtError) as err:
            check_pt(path)
        assert message in str(err.value), (path.name, str(err.value))


# ---------------------------------------------------------------------------- memory
CHILD = textwrap.dedent(
    """
    import json, resource, sys

    def peak_mb():
        # VmHWM: the high-water mark of this process's own memory since exec. ru_maxrss would also
        # count the parent's pages at fork (Linux carries the pre-exec peak over), i.e. pytest's.
        try:
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
        except (OSError, StopIteration):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from vigil.models.pt_gate import check_pt, read_pt
    from vigil.models.pt_pickle import UltralyticsPtError
    before = peak_mb()
    errors = []
    for fn in (check_pt, read_pt):
        try:
            fn(sys.argv[1])
            errors.append(None)
        except UltralyticsPtError as exc:
            errors.append(str(exc))
    print(json.dumps({"before_mb": before, "peak_mb": peak_mb(), "errors": errors}))
    """
)


def _bombs(tmp):
    """name → (path, the refusal it must get). Each would allocate gigabytes if read naively."""
    out = {}
    # a storage of 10^12 float32 elements over 16 bytes
    out["storage_1e12"] = (
        write_pt(tmp / "big.pt", pkl(dct({s("w"): tensor("0", 10**12, (10**12,), (1,))})), {"0": bytes(16)}),
        "storage '0' declares 1000000000000 x float (4000000000000 bytes) but its archive member holds 16 bytes",
    )
    # one element seen through a stride-0 view of 4 * 10^8 (a 1.6 GB copy)
    out["broadcast"] = (
        write_pt(tmp / "bcast.pt", pkl(dct({s("w"): tensor("0", 1, (400_000_000,), (0,))})), {"0": bytes(4)}),
        "has 400000000 elements over a storage of 1: expanding it would allocate 1600000000 bytes",
    )
    # a memo index of 10^8: the unpickler would allocate a memo table of 1.6 GB
    out["memo"] = (
        write_pt(tmp / "memo.pt", pkl(b"N" + b"r" + struct.pack("<I", 100_000_000))),
        "the pickle stores memo entry 100000000 (byte 3) after only 0",
    )
    # a string that says it is 4 GB long
    out["string"] = (
        write_pt(tmp / "str.pt", b"\x80\x02X\xff\xff\xff\xffab."),
        "malformed pickle: expected 4294967295 bytes in a unicodestring4, but only 3 remain",
    )
    out["bytes8"] = (
        write_pt(tmp / "bytes8.pt", b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"ab."),
        "malformed pickle: expected 1099511627776 bytes in a bytes8, but only 3 remain",
    )
    out["marks"] = (write_pt(tmp / "marks.pt", pkl(b"(" * 100_000)), "the pickle nests more than 100 marks")
    out["numpy"] = (
        write_pt(
            tmp / "np.pt",
            pkl(
                call(
                    g("numpy.core.multiarray", "_reconstruct"),
                    g("numpy", "ndarray"),
                    tup(i(10**12)),
                    call(g("_codecs", "encode"), s("b"), s("latin1")),
                )
            ),
        ),
        "numpy _reconstruct is only accepted as numpy pickles an array",
    )
    # zip bombs of a few MB: a storage, and data.pkl itself (a 3.4 GiB string)
    numel = BOMB_MIB * _MiB // 4
    body = pkl(dct({s("w"): tensor("0", numel, (numel,), (1,))}))
    out["zip_storage"] = (
        raw_zip(
            tmp / "zipbomb.pt",
            [
                ("archive/data.pkl", body, 0, len(body)),
                ("archive/data/0", deflate_bomb(b"", BOMB_MIB), 8, BOMB_MIB * _MiB),
            ],
        ),
        f"archive member 'archive/data/0' declares {BOMB_MIB * _MiB} bytes from",
    )
    head = b"\x80\x02X" + struct.pack("<I", BOMB_MIB * _MiB)
    out["zip_pickle"] = (
        raw_zip(
            tmp / "pklbomb.pt",
            [("archive/data.pkl", deflate_bomb(head, BOMB_MIB, b"."), 8, len(head) + BOMB_MIB * _MiB + 1)],
        ),
        "archive member 'archive/data.pkl' declares",
    )
    return out


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    return _bombs(tmp_path_factory.mktemp("bombs"))


@pytest.mark.parametrize(
    "name", ["storage_1e12", "broadcast", "memo", "string", "bytes8", "marks", "numpy", "zip_storage", "zip_pickle"]
)
def test_bombs_are_refused_before_allocating(bombs, name):
    path, message = bombs[name]
    assert path.stat().st_size < 4 * _MiB
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=120, env=os.environ
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    print(
        f"{name}: {path.stat().st_size} bytes, peak RSS {got['peak_mb']:.0f} MB (after imports {got['before_mb']:.0f})"
    )
    for err in got["errors"]:  # check_pt, then read_pt (which checks first)
        assert err is not None and err.startswith(f"{path}: ") and message in err, err
    assert got["peak_mb"] < 300
    assert got["peak_mb"] - got["before_mb"] < 100


def test_zip_bomb_is_genuine(bombs):
    """The bombs really expand: the first MiB inflates to zeros, at about 1000:1."""
    path, _ = bombs["zip_storage"]
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("archive/data/0")
        with z.open(info) as f:
            assert f.read(_MiB) == bytes(_MiB)
    assert info.file_size > 900 * info.compress_size


def test_graph_depth_is_bounded(tmp_path):
    """A chain of lists through the memo (list_k = [list_k-1]) nests without marks or a deep
    stack: refused by the depth of the result."""
    body = b"]r" + struct.pack("<I", 0) + b"0"  # EMPTY_LIST, LONG_BINPUT 0, POP
    for k in range(1, 2000):
        body += b"]j" + struct.pack("<I", k - 1) + b"ar" + struct.pack("<I", k) + b"0"  # [get(k-1)] → put k
    path = write_pt(tmp_path / "deep.pt", pkl(body + b"j" + struct.pack("<I", 1999)))
    with pytest.raises(UnsafeCheckpointError, match="nests more than 256 levels"):
        check_pt(path)


def test_limits_are_configurable(tmp_path):
    path = write_pt(tmp_path / "ok.pt", pkl(dct({s("w"): tensor("0", 4, (2, 2), (2, 1))})), {"0": bytes(16)})
    assert check_pt(path).storage_bytes == 16
    with pytest.raises(UnsafeCheckpointError, match=r"declares \d+ bytes uncompressed, more than the limit of 50"):
        check_pt(path, limits=PtLimits(max_total_bytes=50))
    with pytest.raises(UnsafeCheckpointError, match="more than 3 opcodes"):
        check_pt(path, limits=PtLimits(max_opcodes=3))


# ---------------------------------------------------------------------------- legitimate files pass
def test_a_legitimate_checkpoint_passes_and_reads(tmp_path):
    detect = g("ultralytics.nn.modules.head", "Detect")
    model = new(
        g("ultralytics.nn.tasks", "DetectionModel"),
        dct(
            {
                s("_parameters"): odict({s("w"): tensor("0", 6, (2, 3), (3, 1))}),
                s("_buffers"): odict({s("h"): tensor("1", 2, (2,), (1,), "HalfStorage")}),
                s("_forward_hooks"): odict({}),
                s("_is_full_backward_hook"): b"N",
                s("names"): dct({i(0): s("person")}),
                s("detect"): call(g("builtins", "getattr"), detect, s("forward")),
            }
        ),
    )
    args = call(g("ultralytics.utils", "IterableSimpleNamespace")) + dct({s("imgsz"): i(64)}) + b"b"
    root = dct(
        {
            s("model"): model,
            s("train_args"): args,
            s("path"): call(g("pathlib", "PosixPath"), s("runs"), s("train")),
            s("fitness"): call(
                g("numpy._core.multiarray", "scalar"),
                call(g("numpy", "dtype"), s("f8"), b"\x89", b"\x88"),
                call(g("_codecs", "encode"), s(np.float64(0.25).tobytes().decode("latin1")), s("latin1")),
            ),
        }
    )
    w = np.arange(6, dtype="<f4")
    path = write_pt(tmp_path / "ok.pt", pkl(root), {"0": w.tobytes(), "1": np.ones(2, "<f2").tobytes()})
    report = check_pt(path)
    assert report.prefix == "archive/" and report.storages == 2 and report.storage_bytes == 28
    assert "ultralytics.nn.tasks.DetectionModel" in report.globals and "os.system" not in report.globals
    ck = read_pt(path)
    np.testing.assert_array_equal(ck["model"].w, w.reshape(2, 3))
    assert ck["model"].h.dtype == np.float16 and ck["model"].names == {0: "person"}
    assert ck["train_args"].imgsz == 64 and str(ck["path"]) == "runs/train" and ck["fitness"] == 0.25
    assert "Detect.forward" in repr(ck["model"].detect)


def test_check_reads_no_tensor_data(tmp_path, monkeypatch):
    path = write_pt(tmp_path / "ok.pt", pkl(dct({s("w"): tensor("0", 4, (4,), (1,))})), {"0": bytes(16)})
    read = []
    orig = zipfile.ZipFile.read
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda self, name, pwd=None: read.append(name) or orig(self, name))
    check_pt(path)
    assert read == ["archive/data.pkl", "archive/byteorder"]
    assert isinstance(read_pt(path)["w"], np.ndarray)
    assert repr(TensorSpec((4,), np.dtype("f4"))) == "<tensor float32 [4]>"


def _fetched() -> str | None:
    from vigil.models.cache import default_weights_path

    p = os.environ.get("VIGIL_TEST_YOLOV8_PT") or str(default_weights_path())
    return p if os.path.isfile(p) else None


FETCHED = _fetched()


@pytest.mark.skipif(FETCHED is None, reason="no yolov8s.pt: run `vigil models prepare` or set VIGIL_TEST_YOLOV8_PT")
def test_the_real_yolov8s_checkpoint_passes_in_small_memory():
    done = subprocess.run(
        [sys.executable, "-c", CHILD, FETCHED], capture_output=True, text=True, timeout=120, env=os.environ
    )
    got = json.loads(done.stdout)
    assert got["errors"] == [None, None]
    assert got["peak_mb"] < 300
    report = check_pt(FETCHED)
    assert (
        report.storages == 359
        and report.opcodes < 100_000
        and report.globals[-1] == "ultralytics.nn.tasks.DetectionModel"
    )
