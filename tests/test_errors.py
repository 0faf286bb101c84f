"""Every bad input: a documented exit code and one line on stderr, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import SHARED_MODELS, camapp_env, run_camapp


def one_line_error(proc, code: int, *needles: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("camapp: error: ")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_missing_video_file(model_dir: Path, tmp_path: Path) -> None:
    proc = run_camapp(["run", "--source", str(tmp_path / "nope.mp4")], model_dir)
    one_line_error(proc, 2, "video file not found", "nope.mp4")


def test_file_that_is_not_a_video(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 100)
    one_line_error(run_camapp(["run", "--source", str(bad)], model_dir), 2, "cannot open video")


def test_video_with_no_decodable_frame(
    broker, subscriber_factory, model_dir: Path, tmp_path: Path
) -> None:
    """It opens, but no frame decodes: a usage error, found before anything is announced,
    so no retained discovery config, availability or config is left on the broker."""
    good = tmp_path / "good.avi"
    writer = cv2.VideoWriter(str(good), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for shade in (0, 100, 200):
        writer.write(np.full((64, 64, 3), shade, np.uint8))
    writer.release()
    data = bytearray(good.read_bytes())
    start, end = data.index(b"movi") + 12, data.index(b"idx1")  # every frame's JPEG data
    data[start:end] = bytes(end - start)
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(data)
    args = ["run", "--source", str(corrupt), "--mqtt-port", str(broker.port)]
    one_line_error(run_camapp(args, model_dir), 2, "no decodable frame", "corrupt.avi")
    late = subscriber_factory(broker.port, ["#"])  # retained messages arrive at once
    late.sync("test/sync")  # they would have arrived before this marker
    assert late.messages == []


def test_missing_image(model_dir: Path, tmp_path: Path) -> None:
    proc = run_camapp(["classify", str(tmp_path / "nope.jpg")], model_dir)
    one_line_error(proc, 2, "cannot read image", "nope.jpg")


def closed_stdout_run(args: list[str], model_dir: Path) -> tuple[int, list[str]]:
    """Run camapp with its stdout a pipe nobody reads (`... | head -1` once head is gone),
    buffered as usual: without PYTHONUNBUFFERED, which a developer's shell may set."""
    env = {k: v for k, v in camapp_env(model_dir).items() if k != "PYTHONUNBUFFERED"}
    read_end, write_end = os.pipe()
    os.close(read_end)
    with subprocess.Popen(
        [sys.executable, "-m", "camapp", *args],
        env=env, stdout=write_end, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        os.close(write_end)
        _, stderr = proc.communicate(timeout=60)
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    return proc.returncode, [line for line in stderr.splitlines() if line.startswith("camapp: ")]


def test_output_closed_early(broker, model_dir: Path, photos_clip) -> None:
    image = str(SHARED_MODELS.parent / "media" / "cat.bmp")
    for args in (["classify", image], ["model", "list"], ["model", "info", str(SHARED_MODELS /
                 "mobilenet_v1_0.25_128_quant.tflite")]):  # fmt: skip
        code, lines = closed_stdout_run(args, model_dir)
        assert code == 1  # not Python's 120 for a failed flush at exit
        assert lines == []  # `camapp model list | head` ends quietly, as `ls | head` does
    video, _ = photos_clip
    run = ["run", "--source", str(video), "--print", "--mqtt-port", str(broker.port)]
    code, lines = closed_stdout_run(run, model_dir)
    errors = [line for line in lines if line.startswith("camapp: error: ")]
    assert code == 1 and errors == ["camapp: error: PrintSink failed: [Errno 32] Broken pipe"]


def test_corrupt_model(model_dir: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\x00" * 4096)
    image = str(SHARED_MODELS.parent / "media" / "cat.bmp")
    proc = run_camapp(
        [
            "classify",
            "--model",
            str(corrupt),
            "--labels",
            str(SHARED_MODELS / "imagenet_labels.txt"),
            image,
        ],
        model_dir,
    )
    one_line_error(proc, 2, "corrupt.tflite")


def test_a_detectors_raw_output_is_not_taken_for_class_scores(
    model_dir: Path, tmp_path: Path
) -> None:
    """YOLOv8's one output [1, 84, 8400] has a batch of 1 and a last axis of 8400: a shape
    check that looked at those alone would take it for 8400 classes."""
    image = str(SHARED_MODELS.parent / "media" / "cat.bmp")
    model = str(SHARED_MODELS / "yolov8n_coco_full_integer_quant.tflite")
    labels = [str(i) for i in range(8400)]  # as many labels as such a check would want
    many = tmp_path / "labels_8400.txt"
    many.write_text("\n".join(labels) + "\n")
    proc = run_camapp(["classify", "--model", model, "--labels", str(many), image], model_dir)
    one_line_error(proc, 2, "is not an image classifier")
    assert proc.stdout == ""


def test_edgetpu_model_without_its_delegate(model_dir: Path, tmp_path: Path) -> None:
    image = str(SHARED_MODELS.parent / "media" / "cat.bmp")
    model = str(SHARED_MODELS / "mobilenet_v2_1.0_224_quant_edgetpu.tflite")
    labels = str(SHARED_MODELS / "imagenet_labels.txt")
    # The manifest knows this file needs the Edge TPU: its backend is chosen by itself.
    proc = run_camapp(["classify", "--model", model, "--labels", labels, image], model_dir)
    one_line_error(proc, 2, "cannot load delegate 'edgetpu'", "libedgetpu")
    # A copy the manifest does not know is tried on the CPU, which says what it needs.
    renamed = tmp_path / "mine.tflite"
    renamed.write_bytes(Path(model).read_bytes())
    proc = run_camapp(["classify", "--model", str(renamed), "--labels", labels, image], model_dir)
    one_line_error(proc, 2, "Edge TPU", "--backend edgetpu")
    proc = run_camapp(
        ["classify", "--model", model, "--labels", labels, "--delegate", "edgetpu", image],
        model_dir,
    )
    one_line_error(proc, 2, "cannot load delegate 'edgetpu'", "libedgetpu")


def test_sha256_mismatch_keeps_no_file(model_dir: Path, tmp_path: Path) -> None:
    mirror, dest = tmp_path / "mirror", tmp_path / "dest"
    mirror.mkdir()
    data = bytearray((SHARED_MODELS / "mobilenet_v2_1.0_224_quant.tflite").read_bytes())
    data[1000] ^= 0xFF
    (mirror / "mobilenet_v2_1.0_224_quant.tflite").write_bytes(bytes(data))
    proc = run_camapp(
        ["model", "fetch", "mobilenet_v2_quant", "--mirror", str(mirror), "--dir", str(dest)],
        model_dir,
    )
    one_line_error(proc, 2, "sha256")
    assert not dest.exists() or not any(dest.iterdir())


def test_model_not_fetched(tmp_path: Path) -> None:
    proc = run_camapp(["classify", str(SHARED_MODELS.parent / "media" / "cat.bmp")], tmp_path)
    one_line_error(proc, 2, "camapp model fetch")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--workers", "0"], ["workers", "between 1 and 64", "got 0"]),
        (["--workers", "two"], ["--workers", "invalid int value"]),
        (["--mqtt-port", "70000"], ["mqtt-port", "got 70000"]),
        (["--camera-id", "a/b"], ["--camera-id"]),
        (["--crop", "zoom"], ["crop", "center, stretch"]),
        (["--top-k", "0"], ["--top-k"]),
        (["--duration", "-1"], ["duration", "greater than 0"]),
        (["--duration", "1e10"], ["--duration", "at most a year"]),  # would overflow the timer
        (["--mqtt-host", "broker..lan"], ["--mqtt-host", "host name or IP address"]),
        (["--bogus"], ["unrecognized arguments: --bogus"]),
        (["--mqtt-buffer-messages", "0"], ["--mqtt-buffer-messages", "between 1 and"]),
        (["--mqtt-buffer-bytes", "10"], ["--mqtt-buffer-bytes", "between 1024 and"]),
        (["--threshold", "1.5"], ["threshold", "between 0 and 1", "got 1.5"]),
        (["--state-frames", "0"], ["--state-frames", "between 1 and 1000"]),
        (["--ha-prefix", "home/+/x"], ["ha-prefix", "topic levels"]),
        (["--mqtt-password-file", "/nonexistent/pw"], ["--mqtt-password-file", "file not found"]),
        (["--mqtt-tls-ca", "/nonexistent/ca.pem"], ["--mqtt-tls-ca", "file not found"]),
        (["--picamera-fps", "0"], ["picamera-fps", "between 0.5 and 120", "got 0"]),
        (["--picamera-main-size", "1281x960"], ["--picamera-main-size", "even", "got '1281x960'"]),
    ],
)
def test_bad_command_line_values(
    model_dir: Path, photos_clip, args: list[str], needles: list[str]
) -> None:
    video, _ = photos_clip
    proc = run_camapp(["run", "--source", str(video), *args], model_dir)
    one_line_error(proc, 2, *needles)


@pytest.mark.parametrize(
    ("name", "text", "needles"),
    [
        ("c.toml", "workers = 0\n", ["c.toml", "workers", "got 0"]),
        ("c.toml", "workers = true\n", ["workers", "must be an integer"]),
        ("c.toml", "wrokers = 2\n", ["unknown setting 'wrokers'"]),
        ("c.toml", "[mqtt]\nqos = 3\n", ["mqtt.qos", "between 0 and 2"]),
        ("c.toml", "[mqtt]\nprot = 1\n", ["unknown setting 'mqtt.prot'"]),
        ("c.toml", "workers = \n", ["invalid TOML"]),
        ("c.yaml", "workers: [1, 2]\n", ["c.yaml", "workers", "must be an integer"]),
        ("c.yaml", "workers: : :\n", ["invalid YAML"]),
        ("c.yaml", "- a\n- b\n", ["expected a table"]),
        ("c.toml", "[mqtt]\nbuffer_messages = -1\n", ["mqtt.buffer_messages", "got -1"]),
        ("c.toml", "[mqtt]\ntls_insecure = 1\n", ["mqtt.tls_insecure", "true or false"]),
        ("c.toml", "[mqtt]\nusername = 5\n", ["mqtt.username", "must be a string"]),
        ("c.toml", '[ha]\ndiscovery = "no"\n', ["ha.discovery", "true or false"]),
        ("c.toml", '[ha]\nprfix = "x"\n', ["unknown setting 'ha.prfix'"]),
        ("c.toml", "ha = 3\n", ["ha: must be a table"]),
        ("c.yaml", "threshold: high\n", ["threshold", "must be a number"]),
        ("c.toml", "[picamera]\nfps = 500\n", ["picamera.fps", "between 0.5 and 120"]),
        ("c.toml", "[picamera]\nmain_size = 1280\n", ["picamera.main_size", 'a size "WxH"']),
        ("c.yaml", "picamera:\n  lores_size: 299x224\n", ["picamera.lores_size", "even"]),
        ("c.toml", '[picamera]\nlores_format = "NV12"\n', ["lores_format", "YUV420, RGB888"]),
        (
            "c.yaml",
            "picamera:\n  main_size: 640x480\n  lores_size: 800x600\n",
            ["picamera.lores_size", "exceeds main 640x480"],
        ),
    ],
)
def test_bad_config_files(
    model_dir: Path, photos_clip, tmp_path: Path, name: str, text: str, needles: list[str]
) -> None:
    video, _ = photos_clip
    config = tmp_path / name
    config.write_text(text)
    proc = run_camapp(["run", "--source", str(video), "--config", str(config)], model_dir)
    one_line_error(proc, 2, *needles)


@pytest.mark.parametrize(
    ("source", "code", "needle"),
    [
        ("http://127.0.0.1:{port}/" + "x" * 3000, 1, "cannot open camera or stream: http://127"),
        ("http://127.0.0.1:{port}/a\ncamapp: error: forged", 1, "cannot open camera or stream"),
        ("/nonexistent/a\ncamapp: error: forged.mp4", 2, "video file not found"),
    ],
)
def test_a_source_is_named_in_one_short_line(
    model_dir: Path, tmp_path: Path, source: str, code: int, needle: str
) -> None:
    """A source from a config file is echoed as every value is: one line, at most ~100
    characters of it. The URL or path was repeated whole (a 3 kB line), and a line break in
    it made a second, forged, `camapp: error:` line."""
    from tests.mqtt_helpers import free_port

    config = tmp_path / "c.toml"
    config.write_text(f"source = {json.dumps(source.format(port=free_port()))}\n")
    error = one_line_error(run_camapp(["run", "--config", str(config)], model_dir), code, needle)
    assert len(error) < 160 and "forged" not in error.split(needle)[0]


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("{tmp}", "video file is not a regular file"),  # a folder
        ("{tmp}/fifo", "video file is not a regular file"),
        ("memory:", "video file: the path is empty"),
        ("rtsp://", "bad stream URL rtsp://: no host"),
        ("http://:8080/x", "bad stream URL http://:8080/x: no host"),
        ("http://[::1/x", "bad stream URL http://[::1/x: bad host or port"),
        ("rtsp://cam.lan:99999/x", "bad stream URL rtsp://cam.lan:99999/x: bad host or port"),
        # urllib's own words quoted the password up to its raw '#': "as 'pa'".
        ("rtsp://admin:pa#ss@cam.lan/x", "bad stream URL rtsp://admin:***@cam.lan/x: bad host"),
    ],
)
def test_a_source_no_retry_mends_is_a_usage_error(
    model_dir: Path, tmp_path: Path, source: str, needle: str
) -> None:
    """A folder, a FIFO or an empty path was "not found", and a URL without a host was tried
    as an unreachable stream (exit 1, which systemd restarts for ever): all are the user's
    to fix, exit 2, at once."""
    os.mkfifo(tmp_path / "fifo")
    proc = run_camapp(["run", "--source", source.format(tmp=tmp_path), "--print"], model_dir)
    assert "'pa'" not in one_line_error(proc, 2, needle)


def test_missing_config_file_and_source(model_dir: Path, tmp_path: Path) -> None:
    proc = run_camapp(["run", "--config", str(tmp_path / "none.toml")], model_dir)
    one_line_error(proc, 2, "cannot read config file")
    one_line_error(run_camapp(["run"], model_dir), 2, "no source")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('camera_id = "caf\xe9"\n'.encode("latin-1"))
    proc = run_camapp(["run", "--config", str(latin1)], model_dir)
    one_line_error(proc, 2, "latin1.toml is not UTF-8 text")


def test_command_line_overrides_the_config_file(
    model_dir: Path, photos_clip, tmp_path: Path, broker, subscriber_factory
) -> None:
    video, _ = photos_clip
    config = tmp_path / "c.yaml"
    config.write_text(
        f"source: {video}\ncamera_id: fromfile\nmax_frames: 3\nrealtime: false\n"
        f"mqtt:\n  port: {broker.port}\n"
    )
    sub = subscriber_factory(broker.port, ["camapp/+/classification"])
    proc = run_camapp(["run", "--config", str(config), "--camera-id", "fromcli"], model_dir)
    assert proc.returncode == 0, proc.stderr
    sub.wait_for(lambda: len(sub.messages) == 3)
    assert {m.topic for m in sub.messages} == {"camapp/fromcli/classification"}


def test_bad_mqtt_security_settings(model_dir: Path, photos_clip, tmp_path: Path) -> None:
    video, _ = photos_clip
    run = ["run", "--source", str(video)]
    empty = tmp_path / "empty.pw"
    empty.write_text("\n")
    proc = run_camapp([*run, "--mqtt-username", "u", "--mqtt-password-file", str(empty)], model_dir)
    one_line_error(proc, 2, "password_file", "is empty")
    secret = tmp_path / "pw"
    secret.write_text("hunter2-secret\n")
    proc = run_camapp([*run, "--mqtt-password-file", str(secret)], model_dir)
    line = one_line_error(proc, 2, "mqtt.password_file gives a password", "username")
    assert "hunter2" not in proc.stderr + line
    not_a_cert = tmp_path / "ca.pem"
    not_a_cert.write_text("not a certificate\n")
    proc = run_camapp([*run, "--mqtt-tls-ca", str(not_a_cert)], model_dir)
    one_line_error(proc, 2, "mqtt.tls_ca: cannot load", "ca.pem")
    proc = run_camapp([*run, "--mqtt-tls-key", str(not_a_cert)], model_dir)
    one_line_error(proc, 2, "mqtt.tls_key needs mqtt.tls_cert")
    key, cert = tmp_path / "encrypted.key", tmp_path / "client.crt"
    openssl = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=camapp",
               "-passout", "pass:secret"]  # fmt: skip
    subprocess.run(openssl, check=True, capture_output=True)
    tls = ["--mqtt-tls", "--mqtt-tls-cert", str(cert), "--mqtt-tls-key", str(key)]
    proc = run_camapp([*run, *tls], model_dir, stdin=subprocess.DEVNULL)  # never a prompt
    one_line_error(proc, 2, "mqtt.tls_key", "encrypted with a passphrase")


def test_ha_remove_bad_camera_id(model_dir: Path) -> None:
    proc = run_camapp(["ha", "remove", "--camera-id", "a/b"], model_dir)
    one_line_error(proc, 2, "--camera-id")


def fifo_and_oversized(tmp_path: Path) -> tuple[Path, Path]:
    """A FIFO nobody writes to (reading it waits forever) and a sparse file one byte over
    the cap of a small text file (read whole, it would take its size in memory)."""
    from camapp.files import MAX_TEXT_BYTES

    fifo, big = tmp_path / "fifo.txt", tmp_path / "big.txt"
    os.mkfifo(fifo)
    with big.open("wb") as f:
        f.truncate(MAX_TEXT_BYTES + 1)
    return fifo, big


def test_labels_file_read_bounded(model_dir: Path, tmp_path: Path) -> None:
    """--labels /dev/zero took all memory (an internal MemoryError after a minute), a FIFO
    hung: both are one line now, at once."""
    image = str(SHARED_MODELS.parent / "media" / "cat.bmp")
    fifo, big = fifo_and_oversized(tmp_path)
    proc = run_camapp(["classify", "--labels", str(fifo), image], model_dir, timeout=30)
    one_line_error(proc, 2, "cannot read labels file", "not a regular file")
    proc = run_camapp(["classify", "--labels", str(big), image], model_dir, timeout=30)
    one_line_error(proc, 2, "cannot read labels file", "over the 16 MiB cap")


def test_config_and_password_files_read_bounded(model_dir: Path, tmp_path: Path) -> None:
    """--config /dev/zero (run, ha remove) took all memory, a FIFO hung; a password file
    was read whole too."""
    from camapp.config.load import MAX_CONFIG_BYTES, MAX_SECRET_BYTES

    fifo, _ = fifo_and_oversized(tmp_path)
    big = tmp_path / "big.toml"
    with big.open("wb") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)
    for command in (["run", "--source", "x.mp4"], ["ha", "remove"]):
        for config in (fifo, big):
            proc = run_camapp([*command, "--config", str(config)], model_dir, timeout=30)
            reason = "not a regular file" if config == fifo else "over the 1 MiB cap"
            one_line_error(proc, 2, "cannot read config file", reason)
    secret = tmp_path / "pw"
    with secret.open("wb") as f:
        f.truncate(MAX_SECRET_BYTES + 1)
    args = ["run", "--source", "x.mp4", "--mqtt-username", "u", "--mqtt-password-file"]
    proc = run_camapp([*args, str(secret)], model_dir, timeout=30)
    one_line_error(proc, 2, "mqtt.password_file: cannot read", "over the 64 kB cap")


def test_a_delegate_library_that_is_no_tflite_delegate(model_dir: Path) -> None:
    """A shared library without the plugin entry points (libc here) was an internal
    AttributeError, followed by the traceback its half-made delegate's destructor printed."""
    image = str(SHARED_MODELS.parent / "media" / "cat.bmp")
    proc = run_camapp(["classify", "--delegate", "libc.so.6", image], model_dir)
    one_line_error(proc, 2, "cannot load delegate 'libc.so.6'", "not a TFLite delegate")
    assert proc.stderr.count("\n") == 1, proc.stderr
