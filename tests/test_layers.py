"""Imports point down: each package imports only packages of lower layers (or itself).

The layers, lowest first, follow the data path and what each concern needs; a new package
takes its place here. Imports made inside functions count too (they only hide an arrow), and
each that remains is listed with why it must be there.
"""

from __future__ import annotations

import ast
from pathlib import Path

CAMAPP = Path(__file__).resolve().parents[1] / "camapp"

LAYERS = [
    "errors",
    "files",
    "devices",
    "logs",
    "config",
    "charts",
    "capture",
    "resize",
    "detect",
    "datasets",
    "tflite",
    "models",
    "inference",
    "runtime",
    "governor",
    "training",
    "tools",
    "publish",
    "web",
    "bench",
    "app",
    "cli",
    "__main__",
]

# Imports inside a function, and why each cannot be at the top of its module.
LAZY = {
    ("app.py", "camapp.web.server"): "aiohttp is the optional 'web' extra",
    ("capture/__init__.py", "camapp.capture.opencv"): "OpenCV sources only when asked for",
    ("capture/__init__.py", "camapp.capture.picamera"): "picamera2 exists only on a Pi",
    ("capture/__init__.py", "camapp.capture.imx500"): "the AI Camera's picamera2 parts",
    ("capture/__init__.py", "camapp.capture.memory"): "the bench's in-memory frames",
    ("cli/bench.py", "camapp.bench"): "matplotlib and the harness only for `camapp bench`",
    (
        "inference/backend.py",
        "camapp.inference",
    ): "backend plugins, found when first asked",
    ("web/labelling.py", "camapp.training"): "training (numpy head, graft) only on Train",
    ("web/labelling.py", "camapp.training.embed"): "training only on Train",
}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, inside a function) of each camapp import of a module."""
    parts = list(path.relative_to(CAMAPP.parent).with_suffix("").parts)
    package = parts[:-1]  # what a relative import starts from, in a package's __init__ too
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            names = [f"{module}.{a.name}" if module == "camapp" else module for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(n, node.col_offset > 0) for n in names if n.startswith("camapp.")]
    return found


def _layer(module: str) -> int:
    top = module.split(".")[1]
    return -1 if top == "__version__" else LAYERS.index(top)  # the version: camapp/__init__


def test_every_import_points_down() -> None:
    upward, lazy = [], set()
    for path in sorted(CAMAPP.rglob("*.py")):
        rel = path.relative_to(CAMAPP)
        if rel == Path("__init__.py"):
            continue  # the package's face: its version
        own = _layer(f"camapp.{rel.parts[0].removesuffix('.py')}")
        for module, inside in _imports(path):
            if _layer(module) > own:
                upward.append(f"{rel} -> {module}")
            if inside:
                lazy.add((str(rel), module))
    assert not upward, upward
    assert lazy == set(LAZY), sorted(lazy ^ set(LAZY))


def test_every_package_has_a_layer() -> None:
    tops = {p.name.removesuffix(".py") for p in CAMAPP.iterdir() if not p.name.startswith("_")}
    tops |= {"__main__"}
    assert tops - {"static"} <= set(LAYERS), tops - set(LAYERS)
