"""A private mosquitto on a free loopback port: for `camapp bench` and the tests.

Measurements and tests need a broker nobody else publishes to; assuming one on 1883 would
mix their messages with a real camera's.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from camapp.errors import CamappError, ConfigError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A mosquitto on a free loopback port, configured by the caller, restartable on that port."""

    def __init__(self, workdir: Path, extra_conf: str = "", persistent: bool = False) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise ConfigError("mosquitto is not installed: run `make setup`, which installs it")
        self.binary = binary
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        auth = "" if "allow_anonymous" in extra_conf else "allow_anonymous true\n"
        # Persistent: sessions and queued messages survive a stop()/start() (saved on exit).
        persistence = (
            f"persistence true\npersistence_location {workdir}/\n"
            if persistent
            else "persistence false\n"
        )
        # Started as root, mosquitto would switch to user `mosquitto`, who cannot write the
        # log and database in the caller's private directory.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n{auth}{persistence}{user}"
            f"log_dest file {self.log}\n{extra_conf}"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise CamappError(f"mosquitto exited: {self._last_log_line()}") from None
                time.sleep(0.05)
        raise CamappError("mosquitto did not start listening")

    def _last_log_line(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1] if lines else f"exit code {self.proc.returncode if self.proc else '?'}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
