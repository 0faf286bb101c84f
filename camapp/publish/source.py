"""Whether a camera's source delivers: `<base>/<camera_id>/source` (retained) is `online` or
`offline` (Home Assistant's `Source problem`), and once a source has been down for
`timeout` seconds the debounced state says `unknown` instead of the last label, which the
camera no longer sees. A dead camera never looks alive."""

from __future__ import annotations

import threading
import time

from camapp.publish.objects import ObjectsSink
from camapp.publish.state import StateSink
from camapp.publish.topics import Channel


class SourceWatch:
    """`changed(up)` is registered with the camera's reconnecting source (capture thread);
    `republish` with the publisher's `on_connected`."""

    def __init__(self, channel: Channel, state: StateSink | ObjectsSink, timeout: float) -> None:
        self._channel = channel
        self._state = state
        self._timeout = timeout
        self._lock = threading.Lock()
        self._up = True
        self._timer: threading.Timer | None = None

    def changed(self, up: bool) -> None:
        with self._lock:
            self._up = up
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not up:
                since = time.time()
                self._timer = threading.Timer(self._timeout, self._state.lost, (since,))
                self._timer.daemon = True
                self._timer.start()
        self.republish()

    def republish(self) -> None:
        with self._lock:
            self._channel.publish("source", "online" if self._up else "offline", retain=True)

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
