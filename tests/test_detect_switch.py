"""Switching a running detector camera's model by `set`: the SSD to YOLOv8n between two
frames, the person's track carrying on; a classifier, or a detector from no allowed folder,
refused on `error` with nothing changed; its Home Assistant entities following the switch,
its model select offering detectors only. And a classifier camera refusing a detector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import pytest

from camapp import app, models
from camapp.config.schema import CameraSettings
from camapp.errors import ConfigError
from camapp.inference import ladder, loader
from camapp.runtime import actions
from camapp.runtime.actions import NOT_OFFERED, KnownModels
from camapp.training.clip import clip_frames
from tests.conftest import SHARED_MEDIA, start_camapp
from tests.detect_helpers import fetched
from tests.test_commands import send
from tests.test_ha import stop

CLIP = SHARED_MEDIA / "one-by-one-person-detection.mp4"
YOLO, SSD = "yolov8n_coco", "ssd_mobilenet_v1_coco"
SELECT = "homeassistant/select/camapp-door/model/config"


@pytest.fixture(scope="module")
def detectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with both COCO detectors and the default classifier, verified."""
    return fetched(tmp_path_factory.mktemp("detectors"), YOLO, SSD, models.DEFAULT_MODEL)


@pytest.fixture(scope="module")
def person_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frames 250-445 of the clip (10 frames/s): the second person in view throughout."""
    path = tmp_path_factory.mktemp("clip") / "person.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (768, 432))
    for _, frame in clip_frames(CLIP, first=250, last=445):
        writer.write(frame)
    writer.release()
    return path


def test_a_detector_camera_switches_detector_by_set_and_keeps_its_tracks(
    detectors: Path, person_clip: Path, broker, subscriber_factory, tmp_path: Path
) -> None:
    """The SSD tracks the person; a classifier and a YOLOv8n file outside the allowed
    folders are refused (`config` not republished, the SSD answering on); YOLOv8n by name is
    switched to: `config` and `objects` name it, the person keeps their track id, Home
    Assistant's device names it and its select offers the two detectors, not the classifier."""
    outside = tmp_path / "yolo.tflite"
    outside.write_bytes((detectors / models.load_manifest()[YOLO].file).read_bytes())
    topics = ["camapp/door/objects", "camapp/door/config", "camapp/door/error", SELECT]
    sub = subscriber_factory(broker.port, topics)
    args = ["run", "--source", str(person_clip), "--camera-id", "door", "--model", SSD,
            "--min-score", "0.4", "--mqtt-port", str(broker.port)]  # fmt: skip
    proc = start_camapp(args, detectors, cwd=tmp_path)
    try:
        sub.wait_for(lambda: any(_person(m) for m in _payloads(sub, topics[0])), timeout=15)
        refused = send(sub, "door", {"model": models.DEFAULT_MODEL})
        assert refused == (
            "model: mobilenet_v2_int8 is an image classifier (1001 classes); camera door "
            "detects objects"
        )
        assert send(sub, "door", {"model": str(outside)}) == NOT_OFFERED
        assert send(sub, "door", {"model": YOLO}) is None
        sub.wait_for(lambda: any(m["model"] == YOLO and _person(m)
                                 for m in _payloads(sub, topics[0])), timeout=10)  # fmt: skip
        sub.wait_for(lambda: YOLO in _payloads(sub, SELECT)[-1]["device"]["model"])
    finally:
        stop(proc)
    assert [c["model"] for c in _payloads(sub, topics[1])] == [SSD, YOLO]
    messages = _payloads(sub, topics[0])
    frames = [m["frame"] for m in messages]
    assert frames == sorted(set(frames))  # in frame order, across the switch
    answered = [m["model"] for m in messages]
    switch = answered.index(YOLO)
    assert set(answered[:switch]) == {SSD} and set(answered[switch:]) == {YOLO}
    before = [_person(m) for m in messages[:switch] if _person(m)][-1]
    after = next(_person(m) for m in messages[switch:] if _person(m))
    assert before == after, (before, after)  # the same track: tracks follow labels by name
    select = _payloads(sub, SELECT)
    assert SSD in select[0]["device"]["model"] and select[0]["options"] == [SSD, YOLO]
    assert select[-1]["options"][0] == YOLO and set(select[-1]["options"]) == {SSD, YOLO}


def _payloads(sub: Any, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in sub.on(topic)]


def _person(message: dict[str, Any]) -> int | None:
    """The id of the person tracked in an `objects` message, if there is one."""
    return next((o["id"] for o in message["objects"] if o["label"] == "person"), None)


def test_a_classifier_camera_refuses_a_detector_in_one_line(
    detectors: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a `set` plans for a classifier camera (`ladder.stand_in`, as ModelSwitch does)
    is a classifier: YOLOv8n is refused with one line."""
    monkeypatch.setenv("CAMAPP_MODEL_DIR", str(detectors))
    camera = CameraSettings(camera_id="porch", model=models.DEFAULT_MODEL)
    own = loader.plan_camera(camera)
    with pytest.raises(ConfigError) as refused:
        ladder.stand_in(camera, own, YOLO, 1)
    message = str(refused.value)
    assert "\n" not in message and "is not an image classifier" in message, message


def test_each_kind_of_camera_is_offered_only_the_models_it_takes(
    detectors: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A folder with two detectors and a classifier: a detector camera's select offers the
    detectors, a classifier camera's the classifier (a detector it would refuse)."""
    monkeypatch.setenv("CAMAPP_MODEL_DIR", str(detectors))
    known = KnownModels("door", tmp_path, ())
    assert set(known.options(detectors=True)) == {YOLO, SSD}
    assert set(known.options()) == {models.DEFAULT_MODEL}


def test_the_select_reads_each_model_file_once(
    detectors: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A zone change re-announces the select on the network thread: the models' kinds come
    from what was read before, not from parsing every file again."""
    monkeypatch.setenv("CAMAPP_MODEL_DIR", str(detectors))
    known = KnownModels("door", tmp_path, ())
    known.options(detectors=True)
    read = actions._about_file.cache_info().misses
    assert set(known.options(detectors=True)) == {YOLO, SSD} and set(known.options())
    assert actions._about_file.cache_info().misses == read


@pytest.mark.parametrize(
    ("model", "extra", "fitted"),
    [
        (YOLO, {}, True),  # letterboxed: the whole frame placed unscaled
        (SSD, {}, False),  # stretched: frames cover its input
        (YOLO, {"roi": (0.5, 0.5, 1.0, 1.0)}, False),  # the region keeps its detail
        (YOLO, {"classify": {"person": "people.tflite"}}, False),  # so do the crops
    ],
)
def test_frames_are_fitted_only_where_nothing_loses_detail(
    detectors: Path, monkeypatch: pytest.MonkeyPatch, model: str, extra: dict, fitted: bool
) -> None:
    monkeypatch.setenv("CAMAPP_MODEL_DIR", str(detectors))
    settings = CameraSettings(camera_id="door", model=model, **extra)
    assert app._fitted(settings, loader.plan_detector(model)) is fitted
