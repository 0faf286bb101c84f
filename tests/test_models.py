"""camapp.models against the real Apache-2.0 models in ../shared/models (no mocks)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from camapp import models
from camapp.errors import EXIT_RUNTIME, CamappError, ConfigError
from camapp.models import (
    DEFAULT_MODEL,
    fetch,
    format_model_info,
    load_manifest,
    model_info,
    read_labels,
    resolve_model,
)
from camapp.models.manifest import _parse_manifest, ladder_models
from camapp.tflite.modelfile import open_model

# CI runs in a fresh clone with ../shared beside it; never copied into the repo.
SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
INT8 = SHARED_MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
QUANT = SHARED_MODELS / "mobilenet_v2_1.0_224_quant.tflite"
EDGETPU = SHARED_MODELS / "mobilenet_v2_1.0_224_quant_edgetpu.tflite"
LABELS = SHARED_MODELS / "imagenet_labels.txt"

SHAS = {
    "mobilenet_v2_int8": "5d3137241276e79c86d14a74fe43581398ae0e815191d3dba45495b810840e8c",
    "mobilenet_v2_quant": "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
    "mobilenet_v1_0.75_192": "41daeb22fdcf947e0e5ec32373aa9df7c31f3ef45dbd0ef7b5940fbce3c20f6a",
    "mobilenet_v1_0.5_160": "3cc6d2ca460abd2e0f699a6d0d2550c6b61c6e3b0e27a3616e384ea74cb86f43",
    "mobilenet_v1_0.25_128": "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785",
    "mobilenet_v2_inat_bird": "350fcd8cf1df1560060d464595dfed8b174b05792788052896004848d9ad04f9",
    "mobilenet_v2_edgetpu": "a20b5112542b2e14e46a30c365ba03f25deb1c81b9ea42ec7b7dc2a59620f267",
    "ssd_mobilenet_v1_coco": "e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13",
    "yolov8n_coco": "5469a1079dfd35ab4ee681806542ea2668b85aa4b31a2b96a971543fe1ed9414",
}
DETECTORS = {"ssd_mobilenet_v1_coco", "yolov8n_coco"}
# The labels files fetched with a model: (file, sha256) as ../shared/README.md lists them.
LABEL_FILES = {
    "mobilenet_v2_inat_bird": (
        "inat_bird_labels.txt",
        "a16108dfe3f8daff015b87a97ab6a17e717b9b1bccd719f6d8f747746d7b9277",
    ),
    "mobilenet_v2_edgetpu": (
        "imagenet_labels.txt",
        "b8aaeb5630c62626a7d124a05c0e14230a7ffdd2136a31d0190a4fb71c1d82f1",
    ),
    "ssd_mobilenet_v1_coco": (
        "ssd_mobilenet_v1_coco_labelmap.txt",
        "c7e79c855f73cbba9f33d649d60e1676eb0a974021a41696d1ac0d4b7f7e0211",
    ),
    "yolov8n_coco": (
        "yolov8n_coco_labels.txt",
        "d7654b26101572841ed1cd80aa03aa60e35f1b8acb4aea6906c4066886f16e07",
    ),
}
BIRD = SHARED_MODELS / "mobilenet_v2_1.0_224_inat_bird_quant.tflite"
BIRD_LABELS = SHARED_MODELS / "inat_bird_labels.txt"


@pytest.fixture
def junk(tmp_path: Path) -> Path:
    """Random bytes with a model's name: neither a flatbuffer nor a zip."""
    path = tmp_path / "junk.tflite"
    path.write_bytes(os.urandom(4096))
    return path


def test_manifest_lists_the_zoo_with_their_shas() -> None:
    manifest = load_manifest()
    assert {name: spec.sha256 for name, spec in manifest.items()} == SHAS
    assert DEFAULT_MODEL in manifest
    for spec in manifest.values():
        shared = SHARED_MODELS / spec.file
        assert spec.size == shared.stat().st_size
        labels = (spec.labels.file, spec.labels.sha256) if spec.labels else None
        assert labels == LABEL_FILES.get(spec.name)
        if spec.labels:
            assert spec.labels.size == (SHARED_MODELS / spec.labels.file).stat().st_size
        if spec.kind == "detector":
            continue  # their URLs and inputs: test_detector_entries
        assert spec.url.startswith("https://github.com/google-coral/")
        assert spec.url.endswith("/" + spec.file)
        if spec.delegate is None:  # the graph says what the manifest claims
            info = open_model(shared).info
            assert info.inputs[0].shape == (1, spec.input_size, spec.input_size, 3)
            assert info.inputs[0].dtype == "uint8"  # int8 inside, uint8 in and out
            assert ("INT8" if info.inputs[0].zero_point == (127,) else "UINT8") == (
                spec.quantization.upper()
            )
        if spec.labels:
            assert (
                spec.labels.url
                == f"https://github.com/google-coral/test_data/raw/master/{spec.labels.file}"
            )
    assert manifest["mobilenet_v2_int8"].quantization == "int8"
    assert manifest["mobilenet_v2_quant"].quantization == "uint8"
    assert manifest["mobilenet_v2_edgetpu"].delegate == "edgetpu"
    assert manifest["mobilenet_v2_int8"].delegate is None


def test_detector_entries() -> None:
    """The two COCO detectors: their kind, licence, input and quantization as the graph has
    them, the kind the model file is judged to be, and a pinned public URL."""
    manifest = load_manifest()
    assert {n for n, s in manifest.items() if s.kind == "detector"} == DETECTORS
    assert {s.kind for n, s in manifest.items() if n not in DETECTORS} == {"classifier"}
    assert {n: s.licence for n, s in manifest.items() if s.licence != "Apache-2.0"} == {
        "yolov8n_coco": "AGPL-3.0"
    }
    for name in DETECTORS:
        spec = manifest[name]
        model = open_model(SHARED_MODELS / spec.file)
        assert model.kind == "detector" and spec.labels_set == "coco"
        assert model.info.inputs[0].shape == (1, spec.input_size, spec.input_size, 3)
        assert model.info.inputs[0].dtype == spec.quantization
        assert spec.url.startswith("https://github.com/") and "/raw/" in spec.url


def test_label_sets_and_the_imagenet_ladder() -> None:
    manifest = load_manifest()
    sets = {name: spec.labels_set for name, spec in manifest.items()}
    assert sets.pop("mobilenet_v2_inat_bird") == "inat-birds"
    assert {sets.pop(name) for name in DETECTORS} == {"coco"}
    assert set(sets.values()) == {"imagenet"}
    # Top first, each rung fewer MACs than the one above (counted from the graph).
    ladder = ladder_models("imagenet")
    assert [s.name for s in ladder] == [
        "mobilenet_v2_int8",
        "mobilenet_v1_0.75_192",
        "mobilenet_v1_0.5_160",
        "mobilenet_v1_0.25_128",
    ]
    macs = [open_model(SHARED_MODELS / s.file).info.macs or 0 for s in ladder]
    assert macs == sorted(macs, reverse=True) and macs[-1] > 0
    assert ladder_models("inat-birds") == [] and ladder_models("nothing") == []
    # The detectors' ladder: YOLOv8n, then the SSD, which costs fewer MACs.
    coco = ladder_models("coco")
    assert [s.name for s in coco] == ["yolov8n_coco", "ssd_mobilenet_v1_coco"]
    macs = [open_model(SHARED_MODELS / s.file).info.macs or 0 for s in coco]
    assert macs == sorted(macs, reverse=True) and macs[-1] > 0
    # Models of one label set answer in the same classes.
    for spec in ladder:
        assert read_labels(SHARED_MODELS / spec.file) == LABELS.read_text().splitlines()


def _entry(name: str = DEFAULT_MODEL) -> dict:
    """A manifest table as TOML gives it: no name, no keys left at their default."""
    fields = dataclasses.asdict(load_manifest()[name])
    return {k: v for k, v in fields.items() if k != "name" and v is not None}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": "big"}, "size must be a int"),
        ({"sha256": None}, "missing keys \\['sha256'\\]"),
        ({"labels_set": None}, "missing keys \\['labels_set'\\]"),
        ({"ladder": 0}, "ladder must be 1 or more"),
        ({"ladder": True}, "ladder must be a int"),
        ({"labels": "labels.txt"}, "labels must be a dict"),
        (
            {"labels": {"file": "l.txt", "url": "u", "sha256": "s"}},
            "labels missing keys \\['size'\\]",
        ),
        ({"labels": {"file": "../l.txt", "url": "u", "sha256": "s", "size": 1}}, "bare file name"),
        ({"quantization": "float"}, "quantization must be"),
        ({"kind": "segmenter"}, "kind must be one of classifier, detector"),
        ({"licence": 3}, "licence must be a str"),
    ],
)
def test_manifest_rejects_a_bad_entry(change: dict, message: str) -> None:
    entry = {k: v for k, v in {**_entry(), **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        _parse_manifest({"models": {"m": entry}}, Path("m.toml"))


def test_manifest_rejects_two_models_on_one_rung() -> None:
    tables = {"a": _entry(), "b": _entry("mobilenet_v1_0.5_160")}
    assert _parse_manifest({"models": tables}, Path("m.toml"))["b"].ladder == 3
    tables["b"]["ladder"] = 1
    with pytest.raises(ConfigError, match="two models share a ladder rank"):
        _parse_manifest({"models": tables}, Path("m.toml"))
    tables["b"]["labels_set"] = "other"  # another label set: its own ladder
    assert _parse_manifest({"models": tables}, Path("m.toml"))["b"].ladder == 1


def test_default_model_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAMAPP_MODEL_DIR", str(tmp_path))
    assert models.default_model_dir() == tmp_path
    monkeypatch.delenv("CAMAPP_MODEL_DIR")
    assert models.default_model_dir() == Path(models.__file__).resolve().parents[2] / "models"


def test_fetch_from_mirror_gives_verified_file(tmp_path: Path) -> None:
    messages: list[str] = []
    path = fetch(
        DEFAULT_MODEL,
        dest_dir=tmp_path / "dest",
        mirror=SHARED_MODELS,
        progress=messages.append,
    )
    assert path == tmp_path / "dest" / INT8.name
    assert path.read_bytes() == INT8.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [INT8.name]
    assert any("verified" in m for m in messages)


def test_second_fetch_is_a_noop(tmp_path: Path) -> None:
    path = fetch(DEFAULT_MODEL, dest_dir=tmp_path, mirror=SHARED_MODELS)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # an old mtime any copy would change
    messages: list[str] = []
    assert (
        fetch(
            DEFAULT_MODEL,
            dest_dir=tmp_path,
            mirror=tmp_path / "nowhere",
            progress=messages.append,
        )
        == path
    )
    assert path.stat().st_mtime_ns == 1_000_000_000
    assert "already present" in messages[0]


def test_fetch_replaces_a_corrupt_existing_file(tmp_path: Path) -> None:
    (tmp_path / QUANT.name).write_bytes(b"not a model")
    path = fetch("mobilenet_v2_quant", dest_dir=tmp_path, mirror=SHARED_MODELS)
    assert path.stat().st_size == QUANT.stat().st_size


@pytest.mark.parametrize("tamper", ["flip", "truncate", "extend"])
def test_fetch_from_tampered_mirror_fails_and_leaves_nothing(tmp_path: Path, tamper: str) -> None:
    mirror, dest = tmp_path / "mirror", tmp_path / "dest"
    mirror.mkdir()
    data = bytearray(QUANT.read_bytes())
    if tamper == "flip":
        data[len(data) // 2] ^= 0xFF
    elif tamper == "truncate":
        del data[-100:]
    else:
        data += b"\0"
    (mirror / QUANT.name).write_bytes(data)
    with pytest.raises(ConfigError, match="sha256") as err:
        fetch("mobilenet_v2_quant", dest_dir=dest, mirror=mirror)
    assert SHAS["mobilenet_v2_quant"] in str(err.value)
    assert list(dest.iterdir()) == []


def test_fetch_brings_the_labels_file_verified(tmp_path: Path) -> None:
    messages: list[str] = []
    path = fetch("mobilenet_v2_inat_bird", tmp_path, SHARED_MODELS, messages.append)
    assert path == tmp_path / BIRD.name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([BIRD.name, BIRD_LABELS.name])
    assert (tmp_path / BIRD_LABELS.name).read_bytes() == BIRD_LABELS.read_bytes()
    assert sum("verified sha256" in m for m in messages) == 2
    messages.clear()
    fetch("mobilenet_v2_inat_bird", tmp_path, tmp_path / "nowhere", messages.append)
    assert len(messages) == 2 and all("already present" in m for m in messages)


def test_fetch_with_a_tampered_labels_file_leaves_nothing(tmp_path: Path) -> None:
    mirror, dest = tmp_path / "mirror", tmp_path / "dest"
    mirror.mkdir()
    shutil.copyfile(BIRD, mirror / BIRD.name)
    # One extra line would shift every label by one: the sha256 catches it.
    (mirror / BIRD_LABELS.name).write_text(BIRD_LABELS.read_text() + "extra\n")
    with pytest.raises(ConfigError, match=r"sha256 mismatch for inat_bird_labels\.txt"):
        fetch("mobilenet_v2_inat_bird", dest, mirror)
    assert list(dest.iterdir()) == []


def test_fetch_from_mirror_without_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no mobilenet_v2_1\.0_224_quant\.tflite"):
        fetch("mobilenet_v2_quant", dest_dir=tmp_path / "dest", mirror=tmp_path)
    assert not (tmp_path / "dest").exists()


def test_fetch_downloads_through_urllib(tmp_path: Path) -> None:
    spec = dataclasses.replace(load_manifest()["mobilenet_v2_quant"], url=QUANT.as_uri())
    path = fetch(spec.name, dest_dir=tmp_path, manifest={spec.name: spec})
    assert path.read_bytes() == QUANT.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [QUANT.name]


def test_fetch_unreachable_url_fails_cleanly(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / QUANT.name
    spec = dataclasses.replace(load_manifest()["mobilenet_v2_quant"], url=missing.as_uri())
    with pytest.raises(CamappError, match="cannot download file://") as failed:
        fetch(spec.name, dest_dir=tmp_path / "dest", manifest={spec.name: spec})
    assert failed.value.exit_code == EXIT_RUNTIME  # may work next time: not a usage error
    assert list((tmp_path / "dest").iterdir()) == []


def test_fetch_wrong_bytes_from_url_fails_and_leaves_nothing(tmp_path: Path) -> None:
    spec = dataclasses.replace(load_manifest()["mobilenet_v2_quant"], url=INT8.as_uri())
    with pytest.raises(ConfigError, match="sha256 mismatch"):
        fetch(spec.name, dest_dir=tmp_path, manifest={spec.name: spec})
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'resnet'.*mobilenet_v2_int8"):
        fetch("resnet", dest_dir=tmp_path, mirror=SHARED_MODELS)
    with pytest.raises(ConfigError, match="model file not found: resnet"):
        resolve_model("resnet", model_dir=tmp_path)


def test_resolve_model(tmp_path: Path) -> None:
    assert resolve_model(str(QUANT)) == QUANT
    with pytest.raises(ConfigError, match="run: camapp model fetch mobilenet_v2_int8"):
        resolve_model(None, model_dir=tmp_path)
    fetched = fetch(DEFAULT_MODEL, dest_dir=tmp_path, mirror=SHARED_MODELS)
    assert resolve_model(None, model_dir=tmp_path) == fetched
    assert resolve_model(DEFAULT_MODEL, model_dir=tmp_path) == fetched
    with pytest.raises(ConfigError, match="model file not found"):
        resolve_model(str(tmp_path / "missing.tflite"))
    with pytest.raises(ConfigError, match="not a file"):
        resolve_model(str(tmp_path))


def test_read_labels_from_embedded_metadata() -> None:
    expected = LABELS.read_text(encoding="utf-8").splitlines()
    for model in (INT8, QUANT):
        labels = read_labels(model)
        assert len(labels) == 1001
        assert labels[0] == "background"
        assert labels == expected


def test_read_labels_explicit_file_wins(tmp_path: Path) -> None:
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("  cat \ndog\n\n", encoding="utf-8")
    assert read_labels(INT8, labels_file) == ["cat", "dog"]
    assert read_labels(EDGETPU, LABELS)[:2] == ["background", "tench, Tinca tinca"]
    # An inner blank line keeps its slot: label i must stay output i.
    labels_file.write_text("cat\n\ndog\n", encoding="utf-8")
    assert read_labels(INT8, labels_file) == ["cat", "", "dog"]
    with pytest.raises(ConfigError, match="cannot read labels file"):
        read_labels(INT8, tmp_path / "missing.txt")


def test_read_labels_without_embedded_labels(junk: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pass --labels"):
        read_labels(junk)
    # The Edge TPU build has none embedded: the labels file the manifest fetches with it is
    # used when it lies beside the model, verified.
    fetched = fetch("mobilenet_v2_edgetpu", dest_dir=tmp_path, mirror=SHARED_MODELS)
    assert (tmp_path / LABELS.name).read_bytes() == LABELS.read_bytes()
    assert read_labels(fetched) == LABELS.read_text().splitlines()
    alone = tmp_path / "alone" / EDGETPU.name
    alone.parent.mkdir()
    shutil.copyfile(EDGETPU, alone)
    with pytest.raises(ConfigError, match="pass --labels"):
        read_labels(alone)
    (alone.parent / LABELS.name).write_text("background\ncat\n")  # not the manifest's bytes
    with pytest.raises(ConfigError, match="pass --labels"):
        read_labels(alone)
    # Embedded labels win over a labels file beside the model.
    bird = fetch("mobilenet_v2_inat_bird", dest_dir=tmp_path, mirror=SHARED_MODELS)
    assert read_labels(bird) == BIRD_LABELS.read_text().splitlines()
    assert read_labels(bird)[-1] == "background"


def test_model_info_int8() -> None:
    info = model_info(INT8)
    assert info["bytes"] == 4070174
    assert info["sha256"] == SHAS["mobilenet_v2_int8"]
    assert info["manifest_name"] == "mobilenet_v2_int8"
    assert info["labels"] == 1001
    assert info["delegate"] is None
    (tensor_in,) = info["inputs"]
    assert tensor_in["dtype"] == "uint8"
    assert tensor_in["shape"] == [1, 224, 224, 3]
    assert tensor_in["scale"] == pytest.approx(1 / 127.5)
    assert tensor_in["zero_point"] == 127
    (tensor_out,) = info["outputs"]
    assert tensor_out["shape"] == [1, 1001]
    assert tensor_out["scale"] == pytest.approx(1 / 256)
    text = format_model_info(info)
    assert "mobilenet_v2_int8" in text
    assert "1001 embedded" in text
    assert "uint8 [1, 224, 224, 3] scale 0.00784314 zero_point 127" in text


def test_model_info_edgetpu_without_the_delegate(tmp_path: Path) -> None:
    info = model_info(EDGETPU)  # the shared directory holds imagenet_labels.txt beside it
    assert info["manifest_name"] == "mobilenet_v2_edgetpu"
    assert info["delegate"] == "edgetpu"
    assert info["labels"] == 1001 and info["labels_file"] == str(LABELS)
    assert info["inputs"][0]["zero_point"] == 128
    text = format_model_info(info)
    assert f"1001 from {LABELS} (fetched with the model)" in text
    assert "delegate:  edgetpu" in text
    alone = tmp_path / EDGETPU.name
    shutil.copyfile(EDGETPU, alone)
    info = model_info(alone)
    assert info["labels"] is None and info["labels_file"] is None
    assert "pass --labels" in format_model_info(info)
    assert model_info(BIRD)["labels_file"] is None  # embedded: the file beside is not used


def test_model_info_bad_files(tmp_path: Path, junk: Path) -> None:
    with pytest.raises(ConfigError, match="not a valid TFLite model"):
        model_info(junk)
    empty = tmp_path / "empty.tflite"
    empty.touch()
    with pytest.raises(ConfigError, match="not a valid TFLite model"):
        model_info(empty)
    with pytest.raises(ConfigError, match="model file not found"):
        model_info(tmp_path / "missing.tflite")
    truncated = tmp_path / "truncated.tflite"
    with INT8.open("rb") as src, truncated.open("wb") as dst:
        shutil.copyfileobj(src, dst)
        dst.truncate(100_000)
    with pytest.raises(ConfigError, match="not a valid TFLite model"):
        model_info(truncated)
