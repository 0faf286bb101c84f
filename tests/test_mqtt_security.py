"""Authentication, the documented ACL, and TLS against a real mosquitto.

Certificates are made by the test with the openssl command line; the ACL is the one
shipped in deploy/mosquitto-acl.conf, so the documentation is what gets tested.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, camapp_env, run_camapp, start_camapp
from tests.mqtt_helpers import Broker, free_port

ACL = REPO / "deploy" / "mosquitto-acl.conf"
PASSWORD = "s3cret-Camera-pw"


def replay(video: Path, port: int, *extra: str) -> list[str]:
    return [
        *("run", "--source", str(video), "--no-realtime", "--max-frames", "5"),
        *("--camera-id", "porch", "--mqtt-port", str(port), *extra),
    ]


@pytest.fixture
def acl_broker(tmp_path: Path):
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate([("porch", PASSWORD), ("homeassistant", "ha-pw")]):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            ["mosquitto_passwd", *create, "-b", str(passwd), user, password],
            check=True,
            capture_output=True,
        )
    conf = f"allow_anonymous false\npassword_file {passwd}\nacl_file {ACL}\n"
    broker = Broker(tmp_path, conf).start()
    yield broker
    broker.stop()


def test_password_file_and_acl(
    acl_broker, subscriber_factory, model_dir: Path, photos_clip, tmp_path: Path
) -> None:
    video, _ = photos_clip
    port = acl_broker.port
    ha = subscriber_factory(
        port, ["camapp/#", "homeassistant/#"], username="homeassistant", password="ha-pw"
    )
    secret = tmp_path / "camera.pw"
    secret.write_text(PASSWORD + "\n")
    creds = ["--mqtt-username", "porch", "--mqtt-password-file", str(secret)]
    looping = ["run", "--source", str(video), "--loop", "--camera-id", "porch"]
    proc = start_camapp([*looping, "--mqtt-port", str(port), *creds], model_dir)
    # Everything the camera writes passes the ACL; the `set` it reads too.
    ha.wait_for(lambda: len(ha.on("camapp/porch/classification")) >= 5)
    assert len(ha.on("camapp/porch/config")) == 1
    ha.publish("camapp/porch/set", json.dumps({"stride": 3}))
    ha.wait_for(lambda: len(ha.on("camapp/porch/config")) == 2)
    assert json.loads(ha.on("camapp/porch/config")[1].payload)["stride"] == 3
    from tests.test_ha import expected_entities

    discovery = [m for m in ha.messages if m.topic.startswith("homeassistant/")]
    assert len(discovery) == len(expected_entities())  # every component passes the ACL
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert PASSWORD not in err

    # The camera's own credentials remove its entities: it may read its configs to find them.
    remove = ["ha", "remove", "--camera-id", "porch", "--mqtt-port", str(port), *creds]
    proc = run_camapp(remove, model_dir)
    assert proc.returncode == 0, proc.stderr
    emptied = {
        m.topic for m in ha.messages if m.topic.startswith("homeassistant/") and not m.payload
    }
    assert emptied == {m.topic for m in discovery}

    # The same credentials under another camera's name: the broker refuses every message,
    # which MQTT 5 makes visible: the run says so and fails (it would succeed in silence).
    proc = run_camapp(replay(video, port, *creds, "--camera-id", "garage"), model_dir)
    assert proc.returncode == 1, proc.stderr
    assert "MQTT messages refused by the broker" in proc.stderr and "check its ACL" in proc.stderr
    ha.wait_for(
        lambda: [m.payload for m in ha.on("camapp/porch/availability")][-1:] == [b"offline"]
    )
    assert not [m for m in ha.messages if "garage" in m.topic]


def test_wrong_password_is_one_clear_error_and_retries(
    acl_broker, model_dir: Path, photos_clip
) -> None:
    video, _ = photos_clip
    wrong = "not-the-Password-9"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "camapp",
            *replay(video, acl_broker.port, "--mqtt-username", "porch"),
        ],
        env={**camapp_env(model_dir), "CAMAPP_MQTT_PASSWORD": wrong},
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Frames were classified while camapp kept retrying; at exit the messages are reported.
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and wrong not in proc.stderr
    refused = [line for line in proc.stderr.splitlines() if "refused the connection" in line]
    assert len(refused) == 1, proc.stderr  # once, not once per retry
    assert "check mqtt username and password" in refused[0]  # mosquitto: "Not authorized"
    assert proc.stderr.strip().splitlines()[-1].startswith("camapp: error: ")
    attempts = acl_broker.log.read_text().count("not authorised")
    assert attempts >= 2, acl_broker.log.read_text()


def make_certs(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1, a client certificate, and an
    unrelated CA; EC keys, fast to make."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE"]
    ca_ext += ["-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    for ca in ("ca", "other-ca"):
        openssl(
            "req",
            "-x509",
            *ec,
            *ca_ext,
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.pem",
            "-days",
            "2",
            "-subj",
            f"/CN=camapp test {ca}",
        )
    exts = {
        "server": "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for name, ext in exts.items():
        (directory / f"{name}.ext").write_text(ext + "keyUsage=critical,digitalSignature\n")
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
        )
    return {p.stem + p.suffix: p for p in directory.iterdir()}


def test_tls_with_verification_and_client_certificate(
    tmp_path: Path, subscriber_factory, model_dir: Path, photos_clip
) -> None:
    video, _ = photos_clip
    certs = make_certs(tmp_path)
    tls_port = free_port()
    broker = Broker(
        tmp_path,
        f"listener {tls_port} 127.0.0.1\ncafile {certs['ca.pem']}\n"
        f"certfile {certs['server.pem']}\nkeyfile {certs['server.key']}\n"
        "require_certificate true\n",
    ).start()
    sub = subscriber_factory(broker.port, ["camapp/porch/classification"])
    try:
        client = [
            "--mqtt-tls-cert",
            str(certs["client.pem"]),
            "--mqtt-tls-key",
            str(certs["client.key"]),
        ]
        proc = run_camapp(
            replay(video, tls_port, "--mqtt-tls-ca", str(certs["ca.pem"]), *client), model_dir
        )
        assert proc.returncode == 0, proc.stderr
        sub.wait_for(lambda: len(sub.messages) == 5)

        proc = run_camapp(
            replay(video, tls_port, "--mqtt-tls-ca", str(certs["other-ca.pem"]), *client),
            model_dir,
        )
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        failed = [line for line in proc.stderr.splitlines() if "TLS verification failed" in line]
        assert len(failed) == 1, proc.stderr
        assert "check mqtt tls_ca" in failed[0]
        assert len(sub.messages) == 5
    finally:
        sub.close()
        broker.stop()
