"""Vigil's plate line recogniser: the network, its training on synthetic lines, its ONNX export.

Needs torch (``pip install torch==2.13.0``, the CPU build), imported only by the functions
below; the product runs the exported ONNX file with onnxruntime
(:class:`vigil.plates.ocr.PlateLineRecognizer`).

The network reads one text line, ``(N, 1, LINE_HEIGHT, LINE_WIDTH)`` standardised grey
(:func:`vigil.plates.ocr.line_input`), and gives ``(N, LINE_WIDTH / LINE_STRIDE, 37)`` softmax
CTC probabilities over the blank and ``PLATE_ALPHABET``: five 3x3 convolution blocks (32 to 160
channels; height pooled to 1, width to a quarter), a bidirectional LSTM of 2 x 96 and a linear
layer: 431,813 parameters.

It is trained on :mod:`vigil.plates.line_data` only: typefaces the evaluation never draws,
formats as they are issued, and no openalpr image (those sets measure). Training is seeded.
"""

from __future__ import annotations

import logging
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from .decode import greedy
from .line_data import line_samples
from .ocr import LINE_HEIGHT, LINE_STRIDE, LINE_WIDTH, PLATE_ALPHABET, line_input

log = logging.getLogger(__name__)

__all__ = ["build_network", "make_dataset", "train", "export_onnx"]

_INDEX = {c: i + 1 for i, c in enumerate(PLATE_ALPHABET)}
MAX_LABEL = 12


def build_network():
    """The recogniser as a torch module (input ``(N, 1, 32, 192)``, output ``(N, 48, 37)`` log-probabilities)."""
    import torch  # noqa: PLC0415  (optional heavy dependency: training only)
    from torch import nn  # noqa: PLC0415

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    class LineNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                *block(1, 32), nn.MaxPool2d(2, 2),  # 16 x 96
                *block(32, 64), nn.MaxPool2d(2, 2),  # 8 x 48
                *block(64, 96), nn.MaxPool2d((2, 1)),  # 4 x 48
                *block(96, 128), nn.MaxPool2d((2, 1)),  # 2 x 48
                nn.Conv2d(128, 160, (2, 1), bias=False), nn.BatchNorm2d(160), nn.ReLU(inplace=True),  # 1 x 48
            )  # fmt: skip
            self.rnn = nn.LSTM(160, 96, bidirectional=True, batch_first=True)
            self.head = nn.Linear(192, len(PLATE_ALPHABET) + 1)

        def forward(self, x):
            f = self.features(x).squeeze(2).permute(0, 2, 1)  # (N, T, C)
            y, _ = self.rnn(f)
            return torch.log_softmax(self.head(y), -1)

    return LineNet()


def _encode(label: str) -> list[int]:
    return [_INDEX[c] for c in label if c in _INDEX][:MAX_LABEL]


def _chunk(args) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n, seed = args
    xs = np.zeros((n, LINE_HEIGHT, LINE_WIDTH), np.float16)
    widths = np.zeros(n, np.int16)
    labels = np.zeros((n, MAX_LABEL), np.int8)
    lengths = np.zeros(n, np.int8)
    for i, s in enumerate(line_samples(n, seed)):
        if i >= n:
            break
        x, nw = line_input(s.crop)
        xs[i], widths[i] = x, nw
        code = _encode(s.label)
        labels[i, : len(code)] = code
        lengths[i] = len(code)
    return xs, widths, labels, lengths


def make_dataset(n: int, seed: int = 0, processes: int = 2, chunk: int = 2000):
    """``n`` line samples as arrays: inputs ``(n, 32, 192)`` float16, widths, labels ``(n, 12)``
    (class indices, 0-padded) and label lengths. Chunk ``k`` (``chunk`` lines) is rendered from
    seed ``seed * 100000 + k``, so the set does not depend on ``processes``."""
    jobs = [(min(chunk, n - k * chunk), seed * 100_000 + k) for k in range((n + chunk - 1) // chunk)]
    with get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_chunk, jobs)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))


def train(
    data,
    minutes: float = 40.0,
    batch: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    threads: int = 2,
    val=None,
    steps: int | None = None,
):
    """Train :func:`build_network` on ``data`` (from :func:`make_dataset`): 30 warm-up batches at
    a low rate, then ``steps`` batches, or when None about ``minutes`` of them (the count that
    fits, estimated from the warm-up: a loaded machine trains fewer), on a one-cycle rate;
    returns the network and a log of (step, loss, validation line accuracy), steps counted after
    the warm-up."""
    import torch  # noqa: PLC0415  (optional heavy dependency: training only)

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    xs, widths, labels, lengths = data
    n = len(xs)
    net = build_network()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
    rng = np.random.default_rng(seed)
    t_frames = LINE_WIDTH // LINE_STRIDE

    def step_on(idx):
        x = torch.from_numpy(xs[idx].astype(np.float32))[:, None]
        if rng.random() < 0.5:  # polarity: dark-on-light and light-on-dark plates both exist
            x = -x
        lp = net(x).permute(1, 0, 2)  # (T, N, C)
        tgt = torch.from_numpy(labels[idx].astype(np.int64))
        tl = torch.from_numpy(lengths[idx].astype(np.int64))
        il = torch.from_numpy(np.minimum(t_frames, np.ceil(widths[idx] / LINE_STRIDE).astype(np.int64) + 1))
        loss = ctc(lp, tgt, il, tl)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        return float(loss.detach())

    net.train()
    t0 = time.perf_counter()
    order = rng.permutation(n)
    pos = 0

    def next_idx():
        nonlocal order, pos
        if pos + batch > n:
            order, pos = rng.permutation(n), 0
        idx = np.sort(order[pos : pos + batch])
        pos += batch
        return idx

    for g in opt.param_groups:
        g["lr"] = lr / 25
    for _ in range(30):
        step_on(next_idx())
    per_step = (time.perf_counter() - t0) / 30
    total = int(steps) if steps else max(100, int(minutes * 60 / per_step))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.15)
    history = []
    run = []
    for step in range(total):
        run.append(step_on(next_idx()))
        sched.step()
        if (step + 1) % 500 == 0 or step + 1 == total:
            acc = accuracy(net, val) if val is not None else None
            history.append((step + 1, float(np.mean(run)), acc))
            secs = time.perf_counter() - t0
            log.info("step %d/%d loss %.3f val %s (%.0f s)", step + 1, total, np.mean(run), acc, secs)
            run = []
            net.train()
    return net, history


def accuracy(net, data) -> float:
    """Share of lines whose best path is exactly the label."""
    import torch  # noqa: PLC0415  (optional heavy dependency: training only)

    xs, widths, labels, lengths = data
    net.eval()
    ok = 0
    with torch.no_grad():
        for i in range(0, len(xs), 256):
            out = net(torch.from_numpy(xs[i : i + 256].astype(np.float32))[:, None]).numpy()
            for j, o in enumerate(out):
                k = i + j
                t = min(o.shape[0], int(np.ceil(widths[k] / LINE_STRIDE)) + 1)
                want = "".join(PLATE_ALPHABET[c - 1] for c in labels[k, : lengths[k]])
                ok += greedy(np.exp(o[:t]), PLATE_ALPHABET).text == want
    return ok / max(1, len(xs))


def export_onnx(net, path: str | Path) -> Path:
    """Write the network as ONNX (softmax probabilities, dynamic batch), opset 17."""
    import torch  # noqa: PLC0415  (optional heavy dependency: training only)

    class Probs(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return torch.exp(self.inner(x))

    path = Path(path)
    net.eval()
    dummy = torch.zeros(1, 1, LINE_HEIGHT, LINE_WIDTH)
    torch.onnx.export(
        Probs(net), dummy, str(path), input_names=["x"], output_names=["probs"],
        dynamic_axes={"x": {0: "n"}, "probs": {0: "n"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    return path


def train_and_export(
    out: str | Path,
    lines: int = 150_000,
    minutes: float = 30.0,
    seed: int = 1,
    processes: int = 2,
    threads: int = 2,
    steps: int | None = None,
) -> dict:
    """Make the training set (``lines`` samples, seed ``seed``) and a validation set (3,000, seed
    ``seed + 1``), train for ``steps`` batches (None: about ``minutes``), write the ONNX file
    ``out``; returns a summary (validation line accuracy, steps, seconds)."""
    t0 = time.perf_counter()
    data = make_dataset(lines, seed=seed, processes=processes)
    val = make_dataset(3000, seed=seed + 1, processes=processes)
    t_data = time.perf_counter() - t0
    net, history = train(data, minutes=minutes, val=val, seed=seed - 1, threads=threads, steps=steps)
    path = export_onnx(net, out)
    return {
        "file": str(path),
        "lines": lines,
        "seed": seed,
        "data_seconds": round(t_data, 1),
        "train_seconds": round(time.perf_counter() - t0 - t_data, 1),
        "steps": history[-1][0] if history else 0,
        "val_line_accuracy": history[-1][2] if history else None,
        "history": history,
    }
