"""Who may use the live view: the password, the listening address, sessions, CSRF tokens.

The password is kept only as a scrypt hash (hashlib, no dependency): given hashed in the
config (`http.password_hash`, printed by `camapp web password`), or read from
`http.password_file` or $CAMAPP_HTTP_PASSWORD and hashed at start. Listening on any other
address than loopback without a password is a configuration error.

Logins are limited by `LoginLimiter`: LOGIN_PER_CLIENT passwords checked a minute per
client address, LOGIN_TOTAL for all together, LOGIN_WAITING at once.

A login gives a session: a random token in an HttpOnly, SameSite=Strict cookie. Each session
has a CSRF token (an HMAC of it under a per-process secret) that every state-changing request
must carry in a header; the page reads it from `/api/session`, which another site cannot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path

from camapp.config.load import read_secret
from camapp.config.schema import MAX_SCRYPT_BYTES, HttpSettings
from camapp.errors import ConfigError, shorten

PASSWORD_ENV = "CAMAPP_HTTP_PASSWORD"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB and ~50 ms per login on a PC
MAX_SESSIONS = 32  # the oldest session is forgotten past this: memory stays bounded
SESSION_S = 7 * 86400
MAX_PASSWORD = 1024  # characters
LOGIN_WINDOW_S = 60
LOGIN_PER_CLIENT = 10  # passwords checked per client address (IPv6: per /64) a minute
LOGIN_TOTAL = 60  # ... for every address together: at most one guess a second
LOGIN_WAITING = 4  # logins queued for the password check at once
LOGIN_CLIENTS = 1024  # client addresses remembered; the ceiling covers the rest


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$key`, the form `http.password_hash` takes."""
    salt = salt or secrets.token_bytes(16)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`, a hash the settings' validation has checked."""
    _, n, r, p, salt, key = stored.split("$")
    expected = base64.b64decode(key)
    got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    return hmac.compare_digest(got, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 32) -> bytes:
    data = password.encode("utf-8")
    return hashlib.scrypt(data, salt=salt, n=n, r=r, p=p, dklen=length, maxmem=2 * MAX_SCRYPT_BYTES)


def password_hash(settings: HttpSettings) -> str | None:
    """The page's password as a hash: from the config, the password file or the environment."""
    if settings.password_hash is not None:
        return settings.password_hash
    if settings.password_file is not None:
        return hash_password(read_secret(Path(settings.password_file), "http.password_file"))
    password = os.environ.get(PASSWORD_ENV)
    return hash_password(password) if password else None


def address(bind: str) -> tuple[str, int]:
    """("host", port) from a validated `http.bind`; a bare port listens on 127.0.0.1."""
    host, _, port = bind.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_exposure(settings: HttpSettings, hashed: str | None) -> None:
    """Only loopback may be served without a password."""
    assert settings.bind is not None
    host, _ = address(settings.bind)
    if hashed is None and not is_loopback(host):
        raise ConfigError(
            f"http.bind: {shorten(settings.bind)} is reachable from other machines: set "
            f"http.password_hash, http.password_file or ${PASSWORD_ENV}, or bind to 127.0.0.1"
        )


class Sessions:
    """Session tokens with their expiry, bounded; used on the server's event loop only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._secret = secrets.token_bytes(32)
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._clock = clock

    def create(self) -> str:
        token = secrets.token_urlsafe(32)
        self._expiry[token] = self._clock() + SESSION_S
        while len(self._expiry) > MAX_SESSIONS:
            self._expiry.popitem(last=False)
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        expiry = self._expiry.get(token)
        if expiry is None or expiry < self._clock():
            self._expiry.pop(token, None)
            return False
        return True

    def end(self, token: str) -> None:
        self._expiry.pop(token, None)

    def csrf(self, token: str) -> str:
        return hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, token: str, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(self.csrf(token), given)


class _Client:
    """One address's wrong passwords within the window, and its logins being checked."""

    def __init__(self) -> None:
        self.failures: deque[float] = deque()
        self.pending = 0


class LoginLimiter:
    """How many passwords may be checked. A login counts from the moment it is queued for
    the check, so logins sent at once cannot pass the limit; it is forgotten if the password
    was right and counts for LOGIN_WINDOW_S if it was wrong. Per client address, so a
    guesser elsewhere does not lock the owner out, under a ceiling for every address
    together; at most LOGIN_WAITING wait for the check. Used on the server's loop only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._failures: deque[float] = deque()  # every address's
        self._waiting = 0

    def begin(self, address: str | None) -> str | None:
        """Count a login from `address` before its check: None, or why it is refused."""
        since = self._clock() - LOGIN_WINDOW_S
        client = self._client(_client_key(address))
        for failures in (client.failures, self._failures):
            while failures and failures[0] <= since:
                failures.popleft()
        if self._waiting >= LOGIN_WAITING:
            return "too many logins at once: try again in a moment"
        if len(client.failures) + client.pending >= LOGIN_PER_CLIENT:
            return "too many wrong passwords from this address: wait a minute"
        if len(self._failures) + self._waiting >= LOGIN_TOTAL:
            return "too many wrong passwords: wait a minute"
        client.pending += 1
        self._waiting += 1
        return None

    def end(self, address: str | None, ok: bool) -> None:
        """The check of a login `begin` let through is over."""
        client = self._client(_client_key(address))
        client.pending -= 1
        self._waiting -= 1
        if not ok:
            now = self._clock()
            client.failures.append(now)
            self._failures.append(now)

    def _client(self, key: str) -> _Client:
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = _Client()
            if len(self._clients) > LOGIN_CLIENTS:  # forget the longest unseen idle one
                idle = next(k for k, c in self._clients.items() if not c.pending)
                del self._clients[idle]
        self._clients.move_to_end(key)
        return client


def _client_key(address: str | None) -> str:
    """What the limit counts by: the address; an IPv6 address's /64 (one host's share)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "local"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
