"""The live view's test kit: a still clip, the real `camapp run` with its page on, a raw HTTP
client (it sends paths and headers exactly as given), and the system's Chromium driven by
Selenium through the system chromedriver (nothing downloads a browser)."""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camapp.bench.broker import free_port
from tests.conftest import camapp_env

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BROWSER_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)


def still_clip(path: Path, photo: Path, size: tuple[int, int] = (640, 480), frames: int = 20,
               fps: float = 10.0) -> Path:  # fmt: skip
    """A clip of one photo (its centre, at the clip's aspect), so every frame has one label."""
    image = cv2.imread(str(photo))
    assert image is not None, photo
    h, w = image.shape[:2]
    crop_h = min(h, w * size[1] // size[0])
    crop_w = min(w, h * size[0] // size[1])
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    image = image[top : top + crop_h, left : left + crop_w]
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _ in range(frames):
        writer.write(image)
    writer.release()
    return path


class LiveCamapp:
    """`camapp run` with the page on; `url` once it answers."""

    def __init__(self, args: list[str], model_dir: Path, env: dict[str, str] | None = None,
                 port: int | None = None, files: int | None = None) -> None:  # fmt: skip
        """`files`: the most files the process may open (RLIMIT_NOFILE), else as inherited."""
        self.port = port or free_port()
        limit = (resource.RLIMIT_NOFILE, (files, files)) if files else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "camapp", "run", "--http-bind", str(self.port), *args],
            env={**camapp_env(model_dir), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=(lambda: resource.setrlimit(*limit)) if limit else None,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait()

    def _wait(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"camapp exited: {self.proc.stderr.read()[-600:]}")
            try:
                if Http(self.port).request("GET", "/login.js")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("the live view did not answer")

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


class Http:
    """One request per connection, sent as given; keeps the session cookie it is handed."""

    def __init__(self, port: int, host: str | None = None, source: str | None = None) -> None:
        self.port = port
        self.host = host or f"127.0.0.1:{port}"
        self.source = (source, 0) if source else None  # another loopback address: another client
        self.cookie: str | None = None
        self.csrf: str | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=10, source_address=self.source
        )
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            sent = {"Host": self.host, **(headers or {})}
            if self.cookie and "Cookie" not in sent:
                sent["Cookie"] = self.cookie
            data = body.encode() if isinstance(body, str) else body
            if data is not None:
                sent.setdefault("Content-Length", str(len(data)))
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders(data)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def post(self, path: str, payload: Any, **headers: str) -> tuple[int, dict[str, Any]]:
        """A JSON POST as the page sends it (Origin, CSRF token), with `headers` over it."""
        sent = {"Content-Type": "application/json", "Origin": f"http://{self.host}"}
        if self.csrf:
            sent["X-CSRF-Token"] = self.csrf
        sent.update({k.replace("_", "-"): v for k, v in headers.items()})
        status, _, body = self.request("POST", path, json.dumps(payload), sent)
        return status, json.loads(body or b"{}")

    def login(self, password: str) -> int:
        status, head, _ = self.request(
            "POST",
            "/api/login",
            json.dumps({"password": password}),
            {"Content-Type": "application/json", "Origin": f"http://{self.host}"},
        )
        if status == 200:
            self.cookie = head["Set-Cookie"].split(";", 1)[0]
            self.csrf = json.loads(self.request("GET", "/api/session")[2])["csrf"]
        return status


def browser(profile: Path) -> Any:
    """Headless Chromium in a fresh profile, through the system's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a driver or browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def decode_jpeg(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image
