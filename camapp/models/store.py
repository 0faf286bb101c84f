"""Model files on disk: verified fetching from the manifest's URL or a mirror, and resolving
a `--model` value (a path or a known name) to a file.

Model binaries are never committed; they are fetched by name and checked against the
manifest's size and sha256, so a truncated download or a tampered mirror can never be loaded
by mistake.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

from camapp.errors import CamappError, ConfigError
from camapp.models.manifest import DEFAULT_MODEL, LabelsFile, ModelSpec, _spec, load_manifest

_CHUNK = 1 << 16
_DOWNLOAD_TIMEOUT_S = 60


def default_model_dir() -> Path:
    """Where fetched models live: env override, else the checkout's models/, else the user cache."""
    env = os.environ.get("CAMAPP_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[2] / "models"
    if (checkout / "manifest.toml").is_file():
        return checkout
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values must be ignored.
    cache = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return cache / "camapp" / "models"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# A file the manifest names: a model, or the labels file fetched with it.
Artifact = ModelSpec | LabelsFile


def _is_verified(path: Path, spec: Artifact) -> bool:
    """Size first: it rejects most wrong files without hashing them."""
    return path.is_file() and path.stat().st_size == spec.size and _file_sha256(path) == spec.sha256


def _copy_hashed(src: IO[bytes], dst: IO[bytes], limit: int) -> tuple[int, str]:
    """Copy at most `limit` bytes, hashing on the way so the file is read only once."""
    digest = hashlib.sha256()
    total = 0
    while total < limit and (chunk := src.read(min(_CHUNK, limit - total))):
        digest.update(chunk)
        dst.write(chunk)
        total += len(chunk)
    return total, digest.hexdigest()


# What opening and reading a URL raises (DNS and HTTP errors come wrapped in URLError).
_NETWORK_ERRORS = (
    urllib.error.URLError,
    ConnectionError,
    TimeoutError,
    ssl.SSLError,
    http.client.HTTPException,
)


def _download(url: str, dst: IO[bytes], limit: int) -> tuple[int, str]:
    """Fetch `url` (https or file://) into `dst`. A network failure is a runtime error
    (exit 1: trying again may work); a URL urllib cannot fetch is a configuration error."""
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            return _copy_hashed(response, dst, limit)
    except _NETWORK_ERRORS as exc:  # not the file's writes: fetch() reports those as its own
        reason = getattr(exc, "reason", None) or exc
        raise CamappError(
            f"cannot download {url}: {reason} (try again, or copy it with --mirror DIR)"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"cannot download {url}: {exc}") from None


def fetch(
    name: str,
    dest_dir: Path | None = None,
    mirror: Path | None = None,
    progress: Callable[[str], None] | None = None,
    manifest: dict[str, ModelSpec] | None = None,
) -> Path:
    """Put the verified model `name` (and its labels file, if the manifest gives one) in
    `dest_dir` and return the model's path.

    Copies from `mirror` (a local directory) when given, else downloads the manifest URL.
    The bytes go to a `.part` file that is renamed into place only after the size and
    sha256 match, so an interrupted or bad fetch never leaves a usable-looking model.
    """
    spec = _spec(name, manifest)
    say = progress or (lambda _msg: None)
    dest_dir = default_model_dir() if dest_dir is None else dest_dir
    if spec.labels is not None:
        _fetch_file(name, spec.labels, dest_dir, mirror, say)
    return _fetch_file(name, spec, dest_dir, mirror, say)


def _fetch_file(
    name: str, spec: Artifact, dest_dir: Path, mirror: Path | None, say: Callable[[str], None]
) -> Path:
    """One verified file of model `name` into `dest_dir` (see fetch())."""
    target = dest_dir / spec.file
    if _is_verified(target, spec):
        say(f"{name}: {spec.file} already present and verified at {target}")
        return target

    if mirror is not None:
        source = mirror / spec.file
        if not source.is_file():
            raise ConfigError(f"mirror {mirror} has no {spec.file}")
    else:
        source = None
    origin = str(source) if source else spec.url
    part = dest_dir / f"{spec.file}.part"
    say(f"{name}: fetching {spec.size} bytes from {origin}")
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        with part.open("wb") as out:
            if source is not None:
                with source.open("rb") as src:
                    # Read one byte past the expected size so an oversized file is caught.
                    size, sha = _copy_hashed(src, out, spec.size + 1)
            else:
                size, sha = _download(spec.url, out, spec.size + 1)
        if size != spec.size or sha != spec.sha256:
            raise ConfigError(
                f"sha256 mismatch for {spec.file} from {origin}: expected {spec.sha256}, "
                f"got {sha} ({size} bytes, expected {spec.size})"
            )
        os.replace(part, target)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise ConfigError(f"cannot fetch {name} into {dest_dir}: {exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    say(f"{name}: verified sha256 {spec.sha256}, saved {target}")
    return target


def labels_beside(model_path: Path) -> Path | None:
    """The manifest's labels file for a model file of a known name, if it lies verified
    beside it (where `fetch` puts it); else None."""
    spec = next((s for s in load_manifest().values() if s.file == Path(model_path).name), None)
    if spec is None or spec.labels is None:
        return None
    path = Path(model_path).parent / spec.labels.file
    return path if _is_verified(path, spec.labels) else None


def resolve_model(
    name_or_path: str | None,
    model_dir: Path | None = None,
    manifest: dict[str, ModelSpec] | None = None,
) -> Path:
    """Turn a --model value (file path or manifest name; None = default) into a model file."""
    name_or_path = DEFAULT_MODEL if name_or_path is None else name_or_path
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    manifest = load_manifest() if manifest is None else manifest
    if name_or_path in manifest:
        model_dir = default_model_dir() if model_dir is None else model_dir
        fetched = model_dir / manifest[name_or_path].file
        if fetched.is_file():
            return fetched
        raise ConfigError(
            f"model '{name_or_path}' is not fetched (looked in {model_dir}); "
            f"run: camapp model fetch {name_or_path}"
        )
    if path.exists():
        raise ConfigError(f"model path is not a file: {path}")
    known = ", ".join(sorted(manifest))
    raise ConfigError(f"model file not found: {path} (known model names: {known})")


def fetched(model_dir: Path | None = None) -> list[str]:
    """The names of the known models whose file is in the model directory."""
    directory = default_model_dir() if model_dir is None else model_dir
    return [name for name, spec in load_manifest().items() if (directory / spec.file).is_file()]
