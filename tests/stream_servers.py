"""Real stream servers on free loopback ports, stoppable and restartable on the same port.

- `RtspServer`: GStreamer's RTSP server (tests/rtsp_server.py, run by the system Python that
  has Debian's GObject bindings), serving a clip's H.264 untouched, looped.
- `MjpegServer`: ffmpeg's HTTP server, re-encoding the clip to multipart JPEG (as IP cameras
  serve `/video.mjpg`), looped at the clip's own pace.

Both come from Debian's packages (`make streams` installs them); a missing one fails loudly
rather than skipping the tests that need it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from camapp.bench.broker import free_port
from tests.conftest import SHARED_MEDIA

CLIP = SHARED_MEDIA / "car-detection.mp4"
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SCRIPT = Path(__file__).with_name("rtsp_server.py")
START_TIMEOUT = 10.0
SETUP_HINT = "run `make streams`, which installs it"


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`, seen without connecting (ffmpeg's HTTP
    server serves the first connection it accepts, so a connect would use it up)."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        return any(
            cols[1] == local and cols[3] == "0A"  # 0A: LISTEN
            for cols in (line.split() for line in table.readlines()[1:])
        )


def _rtsp_server_installed() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    check = [SYSTEM_PYTHON, str(RTSP_SCRIPT), "--check"]
    return subprocess.run(check, capture_output=True).returncode == 0


class _Server:
    """A server process on a fixed free port: `start()`, `stop()` (the outage), `start()`."""

    scheme = ""

    def __init__(self, clip: Path = CLIP, path: str = "clip") -> None:
        if not clip.is_file():
            raise FileNotFoundError(f"clip not found: {clip}")
        self.clip = clip
        self.port = free_port()
        self.url = f"{self.scheme}://127.0.0.1:{self.port}/{path}"
        self.path = path
        fd, log = tempfile.mkstemp(prefix=f"{self.scheme}-server-", suffix=".log")
        os.close(fd)
        self.log = Path(log)
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace").strip()[-300:]

    def start(self) -> _Server:
        # A session of its own: stop() ends the server and any child it has, nothing else.
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(self.port):
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"{self.url} server exited: {self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.url} did not start listening: {self._log_tail()}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self.log.unlink(missing_ok=True)


class RtspServer(_Server):
    scheme = "rtsp"

    def __init__(self, clip: Path = CLIP, path: str = "clip") -> None:
        if not _rtsp_server_installed():
            raise RuntimeError(f"GStreamer's RTSP server is not installed: {SETUP_HINT}")
        super().__init__(clip, path)

    def command(self) -> list[str]:
        return [SYSTEM_PYTHON, str(RTSP_SCRIPT), str(self.clip), str(self.port), self.path]


class MjpegServer(_Server):
    """ffmpeg serves one client per run (`-listen 1`), so a shell loop starts it again after
    each client leaves, as a camera's web server would take the next one."""

    scheme = "http"

    def __init__(self, clip: Path = CLIP, path: str = "clip") -> None:
        ffmpeg = shutil.which("ffmpeg")
        if not ffmpeg:
            raise RuntimeError(f"ffmpeg is not installed: {SETUP_HINT}")
        self.ffmpeg = ffmpeg
        super().__init__(clip, path)

    def command(self) -> list[str]:
        serve = [
            self.ffmpeg, "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
            "-i", str(self.clip), "-an", "-c:v", "mjpeg", "-q:v", "5",
            "-f", "mpjpeg", "-listen", "1", self.url,
        ]  # fmt: skip
        return ["bash", "-c", 'while :; do "$@"; sleep 0.05; done', "serve", *serve]


def _serve(server: _Server) -> Iterator:
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    yield from _serve(RtspServer())


@pytest.fixture
def mjpeg_server() -> Iterator[MjpegServer]:
    yield from _serve(MjpegServer())
