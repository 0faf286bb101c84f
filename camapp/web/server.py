"""The live view's web server: aiohttp on its own event loop, in its own thread.

Routes: `/` the page, `/login`, the page's own script and style files (a fixed list, read
into memory at start: nothing else on disk can be served), `/api/session` (cameras, the
controls' declarations, the CSRF token), `/api/login`, `/api/logout`,
`/api/cameras/<camera_id>/set` (settings, and the `capture` and `model` actions: the
labelling's class buttons and its switch to a trained model), the labelling's
`/api/cameras/<camera_id>/labelling` (classes, strip, training), `.../strip/<number>` (a
strip thumbnail, from memory), `.../strip` (label a strip frame), `.../train` and
`.../training/report|chart` (the finished training's report and chart), and `/ws`,
a WebSocket that carries each camera's pictures
(binary: one byte of camera index, then the JPEG) and its overlay, config and stats (JSON).

Every request goes through `_guard`: security headers on every answer; without a password
(loopback only) the Host header must name this server (DNS rebinding); every page but the
login's needs a session; a POST must come from this origin, be JSON, and, but for the login,
carry the session's CSRF token. Bodies are limited to MAX_BODY bytes, viewers to MAX_VIEWERS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, web

from camapp.config.schema import RUNTIME_KEYS, CameraSettings, HttpSettings, unwrap
from camapp.errors import ConfigError, shorten
from camapp.publish.commands import Flooded
from camapp.runtime.controls import ControlError
from camapp.web.auth import (
    MAX_PASSWORD,
    SESSION_S,
    LoginLimiter,
    Sessions,
    address,
    is_loopback,
    verify_password,
)
from camapp.web.door import ACCEPT_BATCH, HEADER_S, IDLE_S, Door
from camapp.web.feed import CameraFeed
from camapp.web.labelling import Labels, Trainer

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
MAX_VIEWERS = 8
CSRF_HEADER = "X-CSRF-Token"
JSON = "application/json"
ASSETS = {  # the only files served, by URL path
    "/": ("index.html", "text/html"),
    "/login": ("login.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/login.js": ("login.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
}
PUBLIC = frozenset({"/login", "/login.js", "/style.css", "/api/login"})
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(eq=False)
class Viewer:
    """One open WebSocket; `wake` is set (on the loop) when something new may be sent."""

    ws: web.WebSocketResponse
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class LiveServer:
    """Listens from construction (so a taken port is found before capture starts); serves
    from `start()` to `stop()`."""

    def __init__(self, settings: HttpSettings, hashed: str | None, feeds: list[CameraFeed]):
        assert settings.bind is not None
        host, port = address(settings.bind)
        self._sock = _listen(host, port, settings.bind)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"
        self._hashed = hashed
        self._feeds = {feed.camera_id: feed for feed in feeds}
        self._view_fps = settings.view_fps
        self._cookie = f"camapp_session_{self.port}"  # cookies ignore ports: one per server
        self._hosts = None if hashed else _loopback_hosts(host, self.port)
        self._files = {path: _asset(name) for path, (name, _) in ASSETS.items()}
        self._sessions = Sessions()
        self._logins = LoginLimiter()
        self._scrypt = ThreadPoolExecutor(1, "web-login")  # one login at a time: bounded memory
        self._viewers: set[Viewer] = set()
        self._trainer = Trainer()
        self._door = Door()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        ready = threading.Event()
        serve = threading.Thread(target=self._serve, args=(ready,), name="web", daemon=True)
        serve.start()
        if not ready.wait(10):
            raise ConfigError(f"http.bind: the live view did not start on {self.url}")
        for feed in self._feeds.values():
            name = f"web-encode-{feed.camera_id}"
            encoder = threading.Thread(target=feed.encode, args=(self._notify,), name=name)
            encoder.daemon = True
            encoder.start()
            self._threads.append(encoder)
        self._threads.append(serve)
        log.info("live view on %s", self.url)

    def stop(self) -> None:
        """Close the viewers' connections and the server; the encoders end with capture."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # already closed
                loop.call_soon_threadsafe(loop.stop)
        for thread in self._threads:
            thread.join(5)
        self._scrypt.shutdown(wait=False)

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = self._app()
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0,
                               keepalive_timeout=IDLE_S)  # fmt: skip
        loop.run_until_complete(runner.setup())
        assert runner.server is not None
        self._door.open_to(runner.server)
        listening = loop.create_server(self._door, sock=self._sock, backlog=ACCEPT_BATCH)
        listener = loop.run_until_complete(listening)
        ticker = loop.create_task(self._tick())
        self._loop = loop
        ready.set()
        loop.run_forever()
        ticker.cancel()
        listener.close()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        for path in ASSETS:
            app.router.add_get(path, self._asset)
        app.router.add_get("/api/session", self._session)
        app.router.add_post("/api/login", self._login)
        app.router.add_post("/api/logout", self._logout)
        app.router.add_post("/api/cameras/{camera_id}/set", self._set)
        app.router.add_get("/api/cameras/{camera_id}/labelling", self._labelling)
        app.router.add_get(r"/api/cameras/{camera_id}/strip/{number:\d{1,9}}", self._thumbnail)
        app.router.add_post("/api/cameras/{camera_id}/strip", self._label)
        app.router.add_post("/api/cameras/{camera_id}/train", self._train)
        app.router.add_get("/api/cameras/{camera_id}/training/{kind:report|chart}", self._report)
        app.router.add_get("/ws", self._ws)
        app.on_shutdown.append(self._close_viewers)
        return app

    # -- the guard -------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            with self._door.serving(request.protocol):
                response = await self._checked(request, handler)
        except web.HTTPException as exc:
            response = exc
        response.headers.update(HEADERS)
        return response

    async def _checked(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._hosts is not None and request.host not in self._hosts:
            return _error(421, "this server answers to its loopback address only")
        if request.method == "POST":
            if not _same_origin(request):
                return _error(403, "cross-origin request refused")
            if request.content_type != "application/json":
                return _error(415, "expected application/json")
        path = request.path
        unknown = request.match_info.http_exception is not None  # the router answers 404/405
        if path in PUBLIC or unknown:
            return await handler(request)
        token = request.cookies.get(self._cookie)
        if token is not None and self._sessions.valid(token):
            if request.method == "POST" and not self._sessions.csrf_ok(
                token, request.headers.get(CSRF_HEADER)
            ):
                return _error(403, "missing or wrong CSRF token")
            return await handler(request)
        if path != "/":
            return _error(401, "log in first")
        if self._hashed is not None:
            raise web.HTTPSeeOther("/login")
        response = await handler(request)  # loopback without a password: no login
        self._new_session(response)
        return response

    def _new_session(self, response: web.StreamResponse) -> None:
        token = self._sessions.create()
        response.set_cookie(
            self._cookie, token, max_age=SESSION_S, httponly=True, samesite="Strict", path="/"
        )

    # -- handlers --------------------------------------------------------------------------

    async def _asset(self, request: web.Request) -> web.Response:
        path = request.path
        if path == "/login" and self._hashed is None:
            raise web.HTTPSeeOther("/")
        return web.Response(body=self._files[path], content_type=ASSETS[path][1])

    async def _session(self, request: web.Request) -> web.Response:
        token = request.cookies[self._cookie]
        feeds = self._feeds.values()
        return web.json_response(
            {
                "csrf": self._sessions.csrf(token),
                "password": self._hashed is not None,
                "view_fps": self._view_fps,
                "cameras": [
                    {"id": f.camera_id, "model": f.model, "crop": f.crop, "kind": f.kind}
                    for f in feeds
                ],
                "controls": control_fields(),
            }
        )

    async def _login(self, request: web.Request) -> web.Response:
        if self._hashed is None:
            return _error(400, "this server has no password")
        body = await _json(request)
        password = body.get("password") if body is not None else None
        if not isinstance(password, str) or not 0 < len(password) <= MAX_PASSWORD:
            return _error(400, 'expected {"password": "..."}')
        if not _is_text(password):  # a lone surrogate: no password holds one, scrypt fails
            return _error(400, "the password is not valid Unicode text")
        client = request.remote
        refused = self._logins.begin(client)  # counted before it waits for the check
        if refused is not None:
            return _error(429, refused)
        ok = False
        try:
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(self._scrypt, verify_password, password, self._hashed)
        finally:
            self._logins.end(client, ok)
        if not ok:
            log.warning("live view: wrong password from %s", client)
            return _error(401, "wrong password")
        response = web.json_response({"ok": True})
        self._new_session(response)
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        self._sessions.end(request.cookies[self._cookie])
        response = web.json_response({"ok": True})
        response.del_cookie(self._cookie, path="/")
        return response

    def _feed(self, request: web.Request) -> CameraFeed:
        feed = self._feeds.get(request.match_info["camera_id"])
        if feed is None:
            raise web.HTTPNotFound(text='{"error": "no such camera"}', content_type=JSON)
        return feed

    async def _set(self, request: web.Request) -> web.Response:
        feed = self._feed(request)
        body = await _json(request)
        if body is None:
            return _error(400, "expected a JSON object of settings")
        # Checked on a thread, not on this loop, which serves every viewer (a capture's limits
        # count the dataset's files); a model switch, which loads and runs the model first or
        # waits for another's turn, is awaited, holding no thread.
        in_turn, loop = feed.commands.in_turn, asyncio.get_running_loop()
        try:
            done = await loop.run_in_executor(None, in_turn, body, "live view")
            config = await asyncio.wrap_future(done)
        except Flooded as exc:
            return _error(429, str(exc))
        except ControlError as exc:
            return _error(400, str(exc))
        self._notify()
        return web.json_response({"config": config})

    # -- labelling -------------------------------------------------------------------------

    def _labelled(self, request: web.Request) -> Labels:
        """The labelling of a labelling route's camera: a classifier's (a detector's classes
        are not its scene's, and it has no strip or training: one line, not a server
        error)."""
        labels = self._feed(request).labels
        if labels is None:
            raise web.HTTPNotFound(
                text='{"error": "a detector camera has no labelling"}', content_type=JSON
            )
        return labels

    async def _labelling(self, request: web.Request) -> web.Response:
        labels = self._labelled(request)
        strip = [{"number": d.number, "label": d.label, "score": round(d.score, 4)}
                 for d in labels.strip.entries()]  # fmt: skip
        status = self._trainer.status.as_dict()
        return web.json_response({"classes": labels.classes(), "strip": strip, "training": status})

    async def _thumbnail(self, request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        for doubt in self._labelled(request).strip.entries():
            if doubt.number == number:
                return web.Response(body=doubt.jpeg, content_type="image/jpeg")
        return _error(404, "that frame has left the strip")

    async def _label(self, request: web.Request) -> web.Response:
        labels = self._labelled(request)
        body = await _json(request) or {}
        number, label = body.get("number"), body.get("label")
        if type(number) is not int or not isinstance(label, str):
            return _error(400, 'expected {"number": N, "label": "..."}')
        loop = asyncio.get_running_loop()
        try:  # encoding and writing the frame: off the loop
            await loop.run_in_executor(None, labels.save, number, label)
        except ConfigError as exc:
            return _error(400, str(exc))
        return web.json_response({"saved": label})

    async def _train(self, request: web.Request) -> web.Response:
        labels = self._labelled(request)
        try:
            started = self._trainer.start(labels.camera.camera_id, labels)
        except ConfigError as exc:  # the camera's model cannot tell its base
            return _error(400, str(exc))
        if not started:
            return _error(409, "a training is already running: one at a time")
        return web.json_response({"training": self._trainer.status.as_dict()}, status=202)

    async def _report(self, request: web.Request) -> web.Response:
        """The report (Markdown, as text) or chart of the camera's finished training."""
        kind = request.match_info["kind"]
        path = self._trainer.report(self._labelled(request).camera.camera_id, kind)
        if path is None:
            return _error(404, f"no {kind}: train first")
        try:  # a few kB, off the loop all the same
            body = await asyncio.get_running_loop().run_in_executor(None, path.read_bytes)
        except OSError:
            return _error(404, f"the {kind} has gone: {path.name}")
        if kind == "chart":
            return web.Response(body=body, content_type="image/png")
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        if not _same_origin(request):
            raise web.HTTPForbidden(text="cross-origin WebSocket refused")
        if len(self._viewers) >= MAX_VIEWERS:
            raise web.HTTPServiceUnavailable(text=f"at most {MAX_VIEWERS} viewers")
        ws = web.WebSocketResponse(max_msg_size=1024, heartbeat=30, compress=False)
        await ws.prepare(request)
        viewer = Viewer(ws)
        self._viewers.add(viewer)
        with ExitStack() as watching:
            for feed in self._feeds.values():
                watching.enter_context(feed.watch())
            sender = asyncio.create_task(self._send(viewer))
            viewer.wake.set()
            try:
                async for _ in ws:  # the page sends nothing; this waits for the close
                    pass
            finally:
                sender.cancel()
                self._viewers.discard(viewer)
        return ws

    # -- pushing to viewers ----------------------------------------------------------------

    async def _send(self, viewer: Viewer) -> None:
        """Send each camera's newest picture, overlay and stats when they change; a slow
        viewer skips pictures rather than queueing them."""
        feeds = list(self._feeds.values())
        pictures: list[Any] = [None] * len(feeds)
        overlays: list[Any] = [None] * len(feeds)
        stats = [-1] * len(feeds)
        ws = viewer.ws
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not ws.closed:
                await viewer.wake.wait()
                viewer.wake.clear()
                for index, feed in enumerate(feeds):
                    overlay = feed.overlay()
                    if overlay != overlays[index]:
                        overlays[index] = overlay
                        await ws.send_str(json.dumps({"camera": index, **overlay}))
                    view = feed.picture
                    if view is not None and view is not pictures[index]:
                        pictures[index] = view
                        await ws.send_bytes(bytes((index,)) + view.picture.jpeg)
                    if feed.stats_version != stats[index]:
                        stats[index] = feed.stats_version
                        points = feed.stats_history()
                        await ws.send_str(json.dumps({"camera": index, "stats": points}))

    def _notify(self) -> None:
        """From any thread: wake every viewer's sender."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: the run is over
            loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for viewer in self._viewers:
            viewer.wake.set()

    async def _tick(self) -> None:
        """Overlays and stats also change without pictures (a paused or ended camera)."""
        while True:
            await asyncio.sleep(1.0)
            self._wake_all()

    async def _close_viewers(self, _app: web.Application) -> None:
        for viewer in list(self._viewers):
            await viewer.ws.close(code=WSCloseCode.GOING_AWAY, message=b"camapp is stopping")


def control_fields() -> list[dict[str, Any]]:
    """The `set` topic's settings as the page builds its controls: from their declaration."""
    out = []
    for key in RUNTIME_KEYS:
        field_info = CameraSettings.model_fields[key]
        kind = unwrap(field_info.annotation)
        lo = hi = None
        for rule in field_info.metadata:
            lo = getattr(rule, "ge", lo)
            hi = getattr(rule, "le", hi)
        out.append(
            {
                "key": key,
                "type": {bool: "bool", int: "int"}.get(kind, "float"),
                "min": lo,
                "max": hi,
                "nullable": field_info.default is None,
                "description": field_info.description,
            }
        )
    return out


def _listen(host: str, port: int, bind: str) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, reuse_port=False)
    except (OSError, UnicodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"http.bind: cannot listen on {shorten(bind)}: {why}") from None


def _loopback_hosts(host: str, port: int) -> frozenset[str]:
    """The Host headers a loopback server answers to."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    if is_loopback(host) and host != "localhost":
        names.add(f"[{host}]" if ":" in host else host)
    return frozenset(f"{name}:{port}" for name in names)


def _same_origin(request: web.Request) -> bool:
    """A browser names the page that sent a request in `Origin`; it must be this server.
    (A client that sends none is not a browser acting for another site.)"""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


async def _json(request: web.Request) -> dict[str, Any] | None:
    """The request's JSON object (its size already bounded by MAX_BODY), or None."""
    try:
        async with asyncio.timeout(HEADER_S):  # a body sent slowly holds a connection busy
            body = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text='{"error": "request body too slow"}', content_type=JSON
        ) from None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _is_text(value: str) -> bool:
    """Whether `value` can be encoded as UTF-8 (JSON's `\\ud800` is a lone surrogate)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _error(status: int, why: str) -> web.Response:
    return web.json_response({"error": why}, status=status)


def _asset(name: str) -> bytes:
    return (resources.files("camapp.web") / "static" / name).read_bytes()
