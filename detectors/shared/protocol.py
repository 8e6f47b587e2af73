"""Every message of the shared detector, as a typed value, and the errors clients see.

Two channels, both :mod:`multiprocessing.connection` connections (pickled objects):

- **Camera socket** (one per camera: a Unix socket with an authentication key, between a
  :class:`~vigil.detectors.shared.client.DetectorClient` and the detector process)::

      client -> detector: Hello                    once, right after connecting
      detector -> client: Welcome | Refused        the answer to Hello
      client -> detector: Frame ...  then Bye      a slot of the ring is ready / goodbye
      detector -> client: Result | Failed          one per Frame, in the order they ran

  Frames themselves never travel here: a :class:`Frame` names the ring slot that holds
  the pixels (see :mod:`~vigil.detectors.shared.ring`); results are small (a
  :class:`~vigil.detectors.detections.Detections`).

- **Control pipe** (between the :class:`~vigil.detectors.shared.server.DetectorServer`
  handle in the parent and the detector process)::

      detector -> parent: Ready | StartFailed      once, when the backend is built (or not)
      parent -> detector: StatsRequest | StopRequest
      detector -> parent: dict                     the answer to StatsRequest (see DetectorServer.stats)
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.detectors.detections import Detections

__all__ = [
    "DetectorError",
    "DetectorClosed",
    "DetectorTimeout",
    "Hello",
    "Welcome",
    "Refused",
    "Frame",
    "Bye",
    "Result",
    "Failed",
    "Ready",
    "StartFailed",
    "StatsRequest",
    "StopRequest",
]


# ---------------------------------------------------------------------------- errors
class DetectorError(RuntimeError):
    """The shared detector failed on a frame, or refused a client."""


class DetectorClosed(DetectorError):
    """The shared detector process is gone (stopped or crashed)."""


class DetectorTimeout(DetectorError, TimeoutError):
    """No result within the client's ``timeout_s``."""


# ---------------------------------------------------------------------------- camera socket
@dataclass(frozen=True)
class Hello:
    """A camera connects: its name (unique among connected cameras), the frame shape
    ``(H, W, 3)`` its ring slots hold (pixels, ``uint8`` BGR) and how many slots it wants."""

    camera: str
    shape: tuple[int, int, int]
    slots: int


@dataclass(frozen=True)
class Welcome:
    """The detector accepted the camera and created its ring: the shared-memory segment ``shm``."""

    shm: str


@dataclass(frozen=True)
class Refused:
    """The detector refused the camera: ``taken`` when another connection has its name
    (the client retries briefly: it may be its own previous connection going away)."""

    error: str
    taken: bool = False


@dataclass(frozen=True)
class Frame:
    """Ring slot ``slot`` holds a new frame; ``seq`` numbers the camera's frames from 0."""

    slot: int
    seq: int


@dataclass(frozen=True)
class Bye:
    """The camera is leaving: the detector drops its queued frames and frees its ring."""


@dataclass(frozen=True)
class Result:
    """The detections of frame ``seq``, in the frame's pixels; ``slot`` is free again."""

    slot: int
    seq: int
    detections: Detections


@dataclass(frozen=True)
class Failed:
    """The detector raised on the batch that held frame ``seq`` (``error``: type and message);
    ``slot`` is free again."""

    slot: int
    seq: int
    error: str


# ---------------------------------------------------------------------------- control pipe
@dataclass(frozen=True)
class Ready:
    """The detector process built its backend: the backend's ``class_names`` and the process id."""

    class_names: list[str]
    pid: int


@dataclass(frozen=True)
class StartFailed:
    """The detector process could not build its backend (or listen); ``error``: type and message."""

    error: str


@dataclass(frozen=True)
class StatsRequest:
    """The parent asks for the stats dict (answered by a thread, even while an inference runs)."""


@dataclass(frozen=True)
class StopRequest:
    """The parent asks the detector process to stop (it frees every ring and exits)."""
