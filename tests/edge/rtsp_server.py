"""A real RTSP camera on loopback for tests: GStreamer's RTSP server streaming a video file
(an MJPEG AVI, passed through without re-encoding). Runs under the *system* Python,
which has Debian's GObject bindings (python3-gi, python3-gst-1.0, gir1.2-gst-rtsp-server-1.0):

    /usr/bin/python3 tests/edge/rtsp_server.py VIDEO PORT

Prints ``READY rtsp://127.0.0.1:PORT/cam`` once it serves; stops on SIGTERM.
"""

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    video, port = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # an MJPEG AVI → RTP/JPEG (plugins-good only), shared so clients join one stream. Each frame is
    # decoded and encoded again by libjpeg: RTP/JPEG (RFC 2435) carries only the quantisation
    # tables and the receiver assumes the standard Huffman tables, so OpenCV's own MJPEG frames,
    # sent as they are, arrive as garbage (grey smears: what the health checks must catch, not
    # what a camera sends)
    factory.set_launch(
        f"( filesrc location={video} ! avidemux ! jpegdec ! jpegenc quality=95 ! rtpjpegpay name=pay0 pt=26 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot bind 127.0.0.1:{port}", flush=True)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"READY rtsp://127.0.0.1:{port}/cam", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
