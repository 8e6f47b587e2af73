"""One detector process per device, shared by every camera worker of the node.

Camera workers (separate processes, usually started with ``spawn``) hand frames to a
single detector process, which forms batches across cameras and runs one inference per
batch:

- **Frames travel through shared memory** (:mod:`.ring`). Each camera gets its own
  segment holding a small ring of fixed-size slots, one frame each (``slots`` x
  ``H x W x 3`` bytes); the detector process creates it when the camera connects and
  unlinks it when the camera goes away or the server stops. Only small typed messages
  (:mod:`.protocol`: slot and sequence numbers) and the results (a
  :class:`~vigil.detectors.detections.Detections`, a few small arrays) go through a
  per-camera connection (a Unix socket with an authentication key).
- **Nothing blocks the video loop** (:mod:`.client`). A slot belongs to the camera from
  ``submit`` until its result comes back; when every slot is in flight,
  :meth:`DetectorClient.submit` drops the *new* frame at once, counts the drop and returns
  ``False``. The synchronous :meth:`DetectorClient.detect` waits for its own result,
  bounded by ``timeout_s``.
- **Batches across cameras** (:mod:`.serve`): at most ``max_batch`` frames, the oldest of
  each camera first, waiting at most ``max_wait_ms`` to fill a batch, run through
  :func:`vigil.detectors.base.detect_batch`.
- **Health.** :meth:`DetectorServer.stats` reports frames in and out, batches, the mean
  batch size, inference time, drops per camera, and a watchdog: an inference running
  longer than ``inference_timeout_s`` sets ``stuck`` and counts a ``watchdog_trip``
  (restarting a stuck detector belongs to the supervisor). Stats are served by a thread of
  the detector process, so they answer even while an inference is stuck.
- **Failures stay local.** A camera process that dies (even ``SIGKILL``) closes its socket;
  the detector process drops that camera's queued frames and frees its segment and goes on
  with the others. If the detector process dies, clients get :class:`DetectorClosed`.
  :meth:`DetectorServer.stop` (:mod:`.server`) stops the process (terminating it if it does
  not exit) and then removes any segment it left behind, so ``/dev/shm`` is clean afterwards.

Usage (the supervisor owns the server; each camera worker gets a client, which pickles)::

    server = DetectorServer(node.detector, max_batch=4, max_wait_ms=5).start()
    client = server.client("cam1", (576, 768))      # pass it to the camera's process
    ...                                             # in the worker:
    dets = client.detect(frame)                     # same contract as a backend's detect

A client uses ``detector.class_names`` of the real backend (sent by the detector process
when it is ready), so a worker can use it in place of a detector unchanged.
"""

from vigil.detectors.shared.client import DetectorClient
from vigil.detectors.shared.protocol import DetectorClosed, DetectorError, DetectorTimeout
from vigil.detectors.shared.server import DetectorServer

__all__ = ["DetectorServer", "DetectorClient", "DetectorError", "DetectorClosed", "DetectorTimeout"]
