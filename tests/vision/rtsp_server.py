"""A real RTSP camera for tests: GStreamer's RTSP server streaming the fixture clip.

Runs under Debian's /usr/bin/python3 (it needs python3-gi and gir1.2-gst-rtsp-server-1.0,
which the project's venv does not have): python3 tests/vision/rtsp_server.py PORT CLIP.
The clip's MPEG-4 video is sent as it is (no re-encoding), so the server costs almost no CPU.
"""

from __future__ import annotations

import sys

import gi  # type: ignore[import-not-found]

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # type: ignore[import-not-found]  # noqa: E402

MOUNT = "/cam"


def main() -> None:
    """Serve CLIP at rtsp://127.0.0.1:PORT/cam until killed."""
    port, clip = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # Every client gets its own pipeline, so a reconnecting reader starts the clip afresh.
    factory.set_shared(False)
    location = clip.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! rtpmp4vpay name=pay0 pt=96 )'
    )
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
