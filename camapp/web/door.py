"""The live view's door: how many connections it keeps open, and for how long.

Each open connection holds one of the process's file descriptors (systemd's default is 1024;
deploy/camapp.service raises it), which the cameras, the models and the broker need too, so
idle sockets must not be able to take them all:
- at most MAX_CONNECTIONS stay open: past it, a new connection closes the oldest one idle
  for GRACE_S or more (one that never sent a request first); when there is none, the new
  one is answered 503 and closed; so the connections hold MAX_CONNECTIONS files, and
  for a turn or two of the loop those just accepted (ACCEPT_BATCH a turn) and being
  refused;
- a connection whose first request has not arrived whole within HEADER_S is closed; between
  requests, aiohttp's keep-alive timeout (IDLE_S) closes an idle one.
Each closing is logged; the log's repeat limit (camapp/logs.py) keeps a flood to a few lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64  # a browser opens about 6; viewers are capped at 8 (server.MAX_VIEWERS)
HEADER_S = 10.0  # for a new connection's first request to arrive whole
GRACE_S = 1.0  # idle for less, a connection is not closed for a new one
# The listening socket's backlog, which is also how many connections asyncio accepts at one
# turn of the loop: each holds a file until the next turn, even the refused.
ACCEPT_BATCH = 128
IDLE_S = 30.0  # between requests on a kept-alive connection
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class Door:
    """The listening socket's protocol factory: each accepted connection is aiohttp's own
    handler behind a `_Counted` that tells the door when it opens and closes. Used on the
    server's loop only."""

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        self._server: web.Server | None = None  # aiohttp's, once its runner is set up
        self._limit = limit
        self._open: dict[RequestHandler, _Counted] = {}  # oldest first

    def open_to(self, server: web.Server) -> None:
        self._server = server

    def __call__(self) -> asyncio.Protocol:
        return _Counted(self)

    @contextmanager
    def serving(self, handler: Any) -> Iterator[None]:
        """Around each request (the server's guard): its connection is busy meanwhile."""
        connection = self._open.get(handler)
        if connection is None:  # closed by the door meanwhile: nothing to count
            yield
            return
        connection.served = True
        connection.busy += 1
        try:
            yield
        finally:
            connection.busy -= 1
            connection.since = asyncio.get_running_loop().time()

    def admit(self, new: _Counted) -> RequestHandler | None:
        """A connection has opened: make room for it and give it aiohttp's handler, or
        refuse it (None; no handler made, so a flood of refusals costs little)."""
        if len(self._open) >= self._limit:
            # Idle for GRACE_S at least: a connection whose request is on its way is not.
            due = new.since - GRACE_S
            idle = [c for c in self._open.values() if not c.busy and c.since <= due]
            if not idle:
                log.warning("live view: %d connections busy: refused a new one", self._limit)
                return None
            unproven = [c for c in idle if not c.served]
            self._close((unproven or idle)[0])
            log.warning("live view: %d connections open: closed the oldest idle", self._limit)
        assert self._server is not None, "open_to() first"
        handler = self._server()
        self._open[handler] = new
        return handler

    def opened_late(self, connection: _Counted) -> None:
        """HEADER_S after it opened: close it if no request has come whole yet."""
        if connection.handler is None:
            return
        if not connection.served and self._open.get(connection.handler) is connection:
            log.warning("live view: no request within %.0f s: connection closed", HEADER_S)
            self._close(connection)

    def closed(self, connection: _Counted) -> None:
        if connection.handler is not None and self._open.get(connection.handler) is connection:
            del self._open[connection.handler]

    def _close(self, connection: _Counted) -> None:
        """No longer counted from now: its socket closes at the loop's next turn."""
        self.closed(connection)
        connection.close()


class _Counted(asyncio.Protocol):
    """aiohttp's handler for one connection (None if refused), and the door's count of it."""

    def __init__(self, door: Door) -> None:
        self.handler: RequestHandler | None = None
        self._door = door
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self.served = False  # a request has come whole
        self.busy = 0  # requests in progress
        self.since = 0.0  # loop time it opened, or its last request ended

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        loop = asyncio.get_running_loop()
        self.since = loop.time()
        self.handler = self._door.admit(self)
        if self.handler is None:
            transport.write(BUSY)
            transport.close()
            return
        self._deadline = loop.call_later(HEADER_S, self._door.opened_late, self)
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.handler is not None:
            self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received() if self.handler is not None else None

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._door.closed(self)
        if self.handler is not None:
            self.handler.connection_lost(exc)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
