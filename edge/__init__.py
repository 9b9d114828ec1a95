"""Campus edge controller: one daemon per classroom gateway box."""

import os
from importlib.metadata import PackageNotFoundError, version

# OpenCV reads these when it loads and when it opens a stream, so set them before any
# module imports cv2. FFmpeg's per-attempt warnings would flood the journal while a
# camera is down (the reader logs each state change once); RTSP over TCP survives the
# packet loss and NAT of school networks where UDP gives smeared frames or nothing.
# An installer can still override either in the unit's environment.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")

try:
    __version__ = version("campus-edge")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
