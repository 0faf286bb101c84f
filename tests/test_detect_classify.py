"""Detect, then classify (issue 19): a classifier per tracked label names each tracked
object's crop as its `sub_label`, a `capture` with `object` saves a tracked object's crop into
the dataset, and a minimum score per label. Real models from ../shared, the real person clip,
the real mosquitto."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from camapp.capture.opencv import FileSource
from camapp.detect.track import MAX_VOTES, Tracker, vote
from camapp.errors import EXIT_USAGE
from camapp.inference import loader
from camapp.inference.detector import classify_crops
from camapp.inference.preprocess import roi_slices
from camapp.runtime.camera import CameraPlan
from camapp.runtime.controls import Controls
from camapp.runtime.pipeline import Pipeline
from tests.conftest import SHARED_MEDIA, SHARED_MODELS, run_camapp, start_camapp
from tests.detect_helpers import CLIP, SSD, SSD_LABELS, YOLO
from tests.mqtt_helpers import Broker, Subscriber
from tests.test_commands import send
from tests.test_ha import stop
from tests.test_pipeline import ListSink

IMAGENET = SHARED_MODELS / "mobilenet_v2_1.0_224_quant.tflite"
HOPPER = SHARED_MEDIA / "grace_hopper.bmp"


def _ssd_run(*extra: str) -> list[str]:
    return ["run", "--source", str(CLIP), "--model", str(SSD), "--labels", str(SSD_LABELS),
            "--camera-id", "door", *extra]  # fmt: skip


def test_a_track_votes_so_one_wrong_crop_does_not_flip_its_sub_label() -> None:
    tracker = Tracker(confirm_frames=1, still_frames=100)  # no update for standing still
    box = np.array([[0.2, 0.2, 0.4, 0.8]])
    for frame, guess in enumerate([("ann", 0.9), ("ann", 0.8), ("bob", 0.95), ("ann", 0.7)]):
        events = tracker.update(frame, frame, box, np.array([0.9]), ["person"], [guess])
        assert tracker.tracks[0].sub_label == "ann", (frame, guess)
    assert events == [] and tracker.tracks[0].voted == 4
    # Unclassified frames keep the vote; a steady other answer wins in the end, and says so.
    tracker.update(4, 4, box, np.array([0.9]), ["person"])
    flips = [tracker.update(f, f, box, np.array([0.9]), ["person"], [("bob", 0.9)])
             for f in range(5, 12)]  # fmt: skip
    assert tracker.tracks[0].sub_label == "bob"
    assert [e.sub_label for es in flips for e in es] == ["bob"]
    track = tracker.tracks[0]
    for i in range(3 * MAX_VOTES):
        vote(track, f"c{i}", 0.5)
    assert len(track.votes) == MAX_VOTES  # bounded however many classes it is shown


def test_new_tracks_ask_for_every_frame_only_while_young() -> None:
    """Eleven people, crops classified for ten of them a frame (the first ten): the eleventh
    never gets a vote, yet once it is no longer young the workers are not kept classifying
    every frame for good."""
    tracker = Tracker(confirm_frames=1)
    boxes = np.array([[0.08 * i, 0.2, 0.08 * i + 0.05, 0.8] for i in range(11)])
    labels = ["person"] * 11
    asked = []
    for frame in range(20):
        guesses = [("ann", 0.9)] * 10 + [None]
        tracker.update(frame, frame, boxes, np.full(11, 0.9), labels, guesses)
        asked.append(tracker.wanting(frozenset({"person"}), 3))
    assert tracker.tracks[10].voted == 0 and asked[0] and not asked[-1]


def test_a_crop_is_classified_through_the_classifier_s_own_preprocessing() -> None:
    """The crop classifier sees the box's pixels: Grace Hopper's person box classifies as
    the whole photo does (military uniform), her tie's box does not."""
    found = loader.load_detector(loader.plan_detector(str(YOLO), min_score=0.3))
    image = cv2.imread(str(HOPPER))
    setup = loader.plan(str(IMAGENET), top_k=1)
    crops = {"person": (loader.load(setup), "stretch")}
    result = classify_crops(found.detect(image, True), image, True, crops)
    person, tie = sorted(result.objects, key=lambda o: o.label)
    assert person.guess is not None and person.guess[0] == "military uniform", person
    assert tie.guess is None  # no classifier for ties


def test_a_minimum_score_per_label_overrides_min_score(model_dir: Path) -> None:
    base = ["detect", "--json", "--model", str(YOLO), str(HOPPER)]
    labels = {}
    for extra in ([], ["--min-scores", "person=0.95"], ["--min-score", "0.7",
                                                       "--min-scores", "tie=0.3"]):  # fmt: skip
        proc = run_camapp([*base, "--min-score", "0.3", *extra], model_dir)
        assert proc.returncode == 0, proc.stderr
        labels[tuple(extra)] = [o["label"] for o in json.loads(proc.stdout)["objects"]]
    assert list(labels.values()) == [["person", "tie"], ["tie"], ["person", "tie"]]


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (["--classify", f"dog={IMAGENET}", "--track", "person"],
         "classify: 'dog' is not a tracked label (track: person)"),
        (["--classify", "person"], '--classify: must be "label=value" pairs'),
        (["--classify", f"person={SSD}"], "is not an image classifier"),
        (["--classify", f"person={SHARED_MODELS / 'deeplabv3_mnv2_pascal_quant.tflite'}"],
         "is not an image classifier: it looks like a semantic segmentation model"),
        (["--classify", "person=/nowhere/people.tflite"], "classify person"),
        (["--min-scores", "person=1.5"], "'person': 1.5 is not within 0.01..1"),
        (["--min-scores", "preson=0.2"], "min_scores: 'preson' is not a class of"),
        # It counted 0 unicorns for ever, where a ladder rung lacking one was refused.
        (["--track", "person,unicorn"], "track: 'unicorn' is not a class of"),
        # Its example was the classify setting's model files: "person=people.tflite,...".
        (["--min-scores", "person"], '--min-scores: must be "label=value" pairs, e.g. '
         '"person=0.6,car=0.4"'),
    ],
)  # fmt: skip
def test_bad_classify_settings_exit_2_in_one_line_before_capture(
    model_dir: Path, extra: list[str], error: str
) -> None:
    proc = run_camapp(_ssd_run("--mqtt-port", "1", *extra), model_dir)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert error in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "detecting in" not in proc.stderr


def test_tracked_people_get_a_sub_label_and_capture_object_saves_their_crop(
    model_dir: Path, tmp_path: Path, broker: Broker, subscriber_factory
) -> None:
    """A detector camera classifying its persons' crops (ImageNet's MobileNetV2: the classes
    mean little here, but every one is a class of the classifier) publishes a sub_label for
    every tracked person from its first message, and in its events; `capture` with `object`
    is refused while no person is tracked, then saves the person's crop."""
    sub = subscriber_factory(broker.port, ["camapp/door/#"])
    dataset = tmp_path / "dataset"
    proc = start_camapp(
        _ssd_run("--classify", f"person={IMAGENET}", "--track", "person", "--max-frames",
                 "140", "--mqtt-port", str(broker.port), "--dataset", str(dataset)),
        model_dir,
    )  # fmt: skip
    sub.wait_for(lambda: sub.on("camapp/door/objects"), timeout=30)
    refused = send(sub, "door", {"capture": "visitor", "object": "person"})
    assert refused == "capture: object: no 'person' is tracked now"
    assert send(sub, "door", {"object": "person"}) == "object: only with capture"
    sub.wait_for(lambda: any(_people(sub)), timeout=30)
    assert send(sub, "door", {"capture": "visitor", "object": "person"}) is None
    sub.wait_for(lambda: list(dataset.glob("visitor/*.jpg")), timeout=10)
    sub.wait_for(lambda: len(_people(sub)) > 20, timeout=10)
    stop(proc)
    classes = set(loader.load_file(IMAGENET).labels)
    people = [o for m in _people(sub) for o in m]
    assert len(people) > 20 and all(o["sub_label"] in classes for o in people), people[:3]
    events = [json.loads(m.payload) for m in sub.on("camapp/door/events")]
    assert events[0]["type"] == "new" and events[0]["sub_label"] in classes
    (saved,) = dataset.glob("visitor/*.jpg")
    sidecar = json.loads(saved.with_suffix(".json").read_text())
    assert sidecar["object"] == "person" and sidecar["crop"] == "stretch"
    image = cv2.imread(str(saved))
    rows, cols = roi_slices((432, 768), tuple(sidecar["box"]))
    assert image.shape == (rows.stop - rows.start, cols.stop - cols.start, 3)
    assert image.shape[0] > 100  # a person's box, not the frame (432 x 768)
    frame = _frame(sidecar["frame"])
    assert np.abs(image.astype(int) - frame[rows, cols]).mean() < 8  # JPEG's loss only


def _people(sub: Subscriber) -> list[list[dict]]:
    messages = (json.loads(m.payload) for m in sub.on("camapp/door/objects"))
    return [m["objects"] for m in messages if m["objects"]]


def _frame(index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(CLIP))
    for _ in range(index + 1):
        ok, frame = capture.read()
        assert ok
    capture.release()
    return frame.astype(int)


def test_capture_object_is_refused_by_a_classifier_camera(
    model_dir: Path, model_path: Path, tmp_path: Path, broker: Broker, subscriber_factory
) -> None:
    sub = subscriber_factory(broker.port, ["camapp/door/#"])
    proc = start_camapp(
        ["run", "--source", str(CLIP), "--model", str(model_path), "--camera-id", "door",
         "--mqtt-port", str(broker.port), "--dataset", str(tmp_path / "d")],
        model_dir,
    )  # fmt: skip
    sub.wait_for(lambda: sub.on("camapp/door/config"), timeout=30)
    refused = send(sub, "door", {"capture": "x", "object": "person"})
    assert refused == "capture: object: only a detector camera saves an object's crop"
    stop(proc)


@pytest.mark.parametrize("eager", [False, True])
def test_the_workers_classify_crops_every_n_frames_or_every_frame_when_eager(eager: bool) -> None:
    """In the worker pool, right after detect: the person crops of every `classify_every`-th
    processed frame only, unless the sink has set `eager` (a new track wants its first votes);
    each detector result carries its frame, for a crop to be cut from."""
    setup = loader.plan(str(IMAGENET), top_k=1)
    spec = loader.plan_detector(str(SSD), str(SSD_LABELS))
    pipeline = Pipeline()
    pool = pipeline.add_pool(2, loader.load_checked)
    plan = CameraPlan("door", "stretch", None, 110, None, None, {"person": setup}, 5)
    if eager:
        plan.eager.set()
    sink = ListSink()
    source = FileSource(CLIP, realtime=False)
    pipeline.add_camera(plan, (spec,), source, [sink], Controls(), pool, False)
    report = pipeline.run()
    assert not report.errors and len(sink.results) == 110
    people = {
        r.frame for r in sink.results if any(o.label == "person" for o in r.classification.objects)
    }
    named = {r.frame for r in sink.results if any(o.guess for o in r.classification.objects)}
    assert len(people) > 30, people
    assert named == (people if eager else {f for f in people if f % 5 == 0})
    assert all(r.picture is not None and r.picture.seq == r.frame for r in sink.results)


CROP_SCRIPT = """
import functools, sys, threading
from pathlib import Path
from camapp.capture.opencv import FileSource
from camapp.config.schema import CameraSettings, MqttSettings
from camapp.inference import loader
from camapp.publish.mqtt import MqttPublisher
from camapp.publish.objects import ObjectsSink
from camapp.publish.topics import Channel
from camapp.runtime import actions
from camapp.runtime.camera import CameraPlan
from camapp.runtime.controls import Controls
from camapp.runtime.pipeline import Pipeline

clip, ssd, labels, dataset = sys.argv[1:]
writers = set()
def hook(event, args):
    if event == "open" and str(args[0]).startswith(dataset) and "w" in str(args[1]):
        writers.add(threading.current_thread().name)
sys.addaudithook(hook)
channel = Channel(MqttPublisher(MqttSettings(), "t"), "camapp", "door", ("camapp/door/a",))
objects = ObjectsSink(channel, ("person",), [], 2)
class Ask:  # asks for the person's crop once one is tracked
    def send(self, result):
        if objects.tracking("person") and not writers and not objects.crop_pending:
            objects.request_crop("visitor", "person")
pipeline = Pipeline()
pool = pipeline.add_pool(1, loader.load_checked)
plan = CameraPlan("door", "stretch", None, 200)
source = FileSource(Path(clip), realtime=False)
spec = loader.plan_detector(ssd, labels)
camera = pipeline.add_camera(plan, (spec,), source, [objects, Ask()], Controls(), pool, False)
limits = actions.DatasetLimits.of(CameraSettings(), Path(dataset))
objects.save_crop = functools.partial(actions.keep_crop, limits, camera)
pipeline.run()
print(" ".join(sorted(writers)), len(list(Path(dataset).glob("visitor/*.jpg"))))
"""


def test_an_objects_crop_is_written_by_the_capture_thread(tmp_path: Path) -> None:
    """The disk write of `capture` with `object` happens on the camera's capture thread, as a
    whole frame's does, never on the worker that emits results in order (a slow SD card
    would hold every result behind it)."""
    script = tmp_path / "crop.py"
    script.write_text(CROP_SCRIPT)
    dataset = tmp_path / "dataset"
    done = subprocess.run(
        [sys.executable, str(script), str(CLIP), str(SSD), str(SSD_LABELS), str(dataset)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-500:]
    threads, saved = done.stdout.split()
    assert threads == "capture-door" and int(saved) >= 1, done.stdout
