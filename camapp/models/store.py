"""Known models: the manifest, verified fetching, path resolution, labels and info.

Model binaries are never committed; they are fetched by name from the manifest and
checked against its size and sha256, so a truncated download or a tampered mirror
can never be loaded by mistake.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
import tomllib
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from camapp.errors import CamappError, ConfigError
from camapp.inference.litert import interpreter_api

DEFAULT_MODEL = "mobilenet_v2_int8"

_CHUNK = 1 << 16
_DOWNLOAD_TIMEOUT_S = 60
# Edge TPU-compiled models hold their whole graph in this custom op.
_EDGETPU_OP = b"edgetpu-custom-op"


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry: where to get a model and how to recognise the right bytes."""

    name: str
    file: str
    url: str
    sha256: str
    size: int  # bytes
    input_size: int
    quantization: str  # "int8" | "uint8"
    description: str
    delegate: str | None = None  # "edgetpu" for the Edge TPU build


_REQUIRED: dict[str, type] = {
    "file": str,
    "url": str,
    "sha256": str,
    "size": int,
    "input_size": int,
    "quantization": str,
    "description": str,
}
_OPTIONAL: dict[str, type] = {"delegate": str}


def _manifest_path() -> Path:
    """The wheel ships the manifest inside the package; a checkout keeps it in models/."""
    here = Path(__file__).resolve()
    for candidate in (
        here.parent / "manifest.toml",
        here.parents[2] / "models" / "manifest.toml",
    ):
        if candidate.is_file():
            return candidate
    raise ConfigError("model manifest not found: reinstall camapp")


def _parse_manifest(data: dict[str, Any], source: Path) -> dict[str, ModelSpec]:
    """Check every entry up front so a bad edit fails clearly, not at fetch time."""
    tables = data.get("models")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"invalid model manifest {source}: no [models.NAME] tables")
    specs: dict[str, ModelSpec] = {}
    for name, table in tables.items():
        where = f"invalid model manifest {source}: [models.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} is not a table")
        missing = sorted(_REQUIRED.keys() - table.keys())
        unknown = sorted(table.keys() - _REQUIRED.keys() - _OPTIONAL.keys())
        if missing or unknown:
            raise ConfigError(f"{where} missing keys {missing}, unknown keys {unknown}")
        for key, value in table.items():
            want = {**_REQUIRED, **_OPTIONAL}[key]
            # bool is an int subclass; `size = true` is still a mistake.
            if not isinstance(value, want) or isinstance(value, bool):
                raise ConfigError(f"{where} {key} must be a {want.__name__}")
        if Path(table["file"]).name != table["file"]:
            raise ConfigError(f"{where} file must be a bare file name")
        if table["quantization"] not in ("int8", "uint8"):
            raise ConfigError(f"{where} quantization must be 'int8' or 'uint8'")
        specs[name] = ModelSpec(name=name, **table)
    return specs


def load_manifest() -> dict[str, ModelSpec]:
    """Read the manifest of known models, keyed by name."""
    path = _manifest_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"invalid model manifest {path}: {exc}") from None
    return _parse_manifest(data, path)


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


def _spec(name: str, manifest: dict[str, ModelSpec] | None) -> ModelSpec:
    manifest = load_manifest() if manifest is None else manifest
    if name not in manifest:
        known = ", ".join(sorted(manifest))
        raise ConfigError(f"unknown model '{name}' (known models: {known})")
    return manifest[name]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_verified(path: Path, spec: ModelSpec) -> bool:
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
    """Put the verified model `name` in `dest_dir` and return its path.

    Copies from `mirror` (a local directory) when given, else downloads the manifest URL.
    The bytes go to a `.part` file that is renamed into place only after the size and
    sha256 match, so an interrupted or bad fetch never leaves a usable-looking model.
    """
    spec = _spec(name, manifest)
    say = progress or (lambda _msg: None)
    dest_dir = default_model_dir() if dest_dir is None else dest_dir
    target = dest_dir / spec.file
    if _is_verified(target, spec):
        say(f"{name}: already present and verified at {target}")
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


def _label_lines(text: str) -> list[str]:
    """Strip each line; drop blank lines only at the end, since label i must match output i."""
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    return labels


def read_labels(model_path: Path, labels_path: Path | None = None) -> list[str]:
    """Class names: an explicit file wins, else the first .txt embedded in the model."""
    if labels_path is not None:
        try:
            text = Path(labels_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read labels file {labels_path}: {exc.strerror or exc}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"labels file is not UTF-8 text: {labels_path}") from None
        labels = _label_lines(text)
        if not labels:
            raise ConfigError(f"labels file is empty: {labels_path}")
        return labels

    try:
        with zipfile.ZipFile(model_path) as bundle:
            names = [n for n in bundle.namelist() if n.endswith(".txt")]
            text = bundle.read(names[0]).decode("utf-8") if names else ""
    except FileNotFoundError:
        raise ConfigError(f"model file not found: {model_path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read model {model_path}: {exc.strerror or exc}") from None
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        UnicodeDecodeError,
    ):
        text = ""  # no usable embedded zip: same as none
    labels = _label_lines(text)
    if not labels:
        raise ConfigError(f"model {model_path} has no embedded labels; pass --labels FILE")
    return labels


def _tensor_info(detail: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = detail["quantization"]
    return {
        "name": detail["name"],
        "shape": [int(d) for d in detail["shape"]],
        "dtype": detail["dtype"].__name__,
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def display_name(model_path: Path) -> str:
    """The manifest name of a model file (by file name), else its stem: what messages report."""
    return next(
        (s.name for s in load_manifest().values() if s.file == model_path.name), model_path.stem
    )


def model_info(model_path: Path) -> dict[str, Any]:
    """Describe a model file without running it, so Edge TPU builds work on any host."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ConfigError(f"model file not found: {model_path}")
    try:
        data = model_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read model {model_path}: {exc.strerror or exc}") from None
    interpreter_class = interpreter_api()[0]
    try:
        # Tensor details are readable before allocate_tensors(), which would fail on
        # a host without the delegate a model needs.
        interpreter = interpreter_class(model_path=str(model_path), num_threads=1)
        inputs = [_tensor_info(d) for d in interpreter.get_input_details()]
        outputs = [_tensor_info(d) for d in interpreter.get_output_details()]
    except (ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"not a valid TFLite model: {model_path} ({reason})") from None
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        labels: int | None = len(read_labels(model_path))
    except ConfigError:
        labels = None
    manifest_name = next((s.name for s in load_manifest().values() if s.sha256 == sha256), None)
    return {
        "path": str(model_path),
        "bytes": len(data),
        "sha256": sha256,
        "inputs": inputs,
        "outputs": outputs,
        "labels": labels,
        "manifest_name": manifest_name,
        "delegate": "edgetpu" if _EDGETPU_OP in data else None,
    }


def _format_tensor(kind: str, index: int, tensor: dict[str, Any]) -> str:
    if tensor["scale"]:
        quant = f"scale {tensor['scale']:.6g} zero_point {tensor['zero_point']}"
    else:
        quant = "not quantized"
    return (
        f"{kind} {index}:".ljust(11)
        + f"{tensor['name']} {tensor['dtype']} {tensor['shape']} {quant}"
    )


def format_model_info(info: dict[str, Any]) -> str:
    """Render model_info() for `camapp model info`."""
    labels = (
        f"{info['labels']} embedded"
        if info["labels"] is not None
        else "none embedded (pass --labels FILE)"
    )
    lines = [
        f"path:      {info['path']}",
        f"manifest:  {info['manifest_name'] or 'not in manifest'}",
        f"size:      {info['bytes']} bytes ({info['bytes'] / 2**20:.1f} MiB)",
        f"sha256:    {info['sha256']}",
        f"labels:    {labels}",
    ]
    if info.get("delegate"):
        lines.append(f"delegate:  {info['delegate']} (cannot run on a plain CPU)")
    lines += [_format_tensor("input", i, t) for i, t in enumerate(info["inputs"])]
    lines += [_format_tensor("output", i, t) for i, t in enumerate(info["outputs"])]
    return "\n".join(lines)
