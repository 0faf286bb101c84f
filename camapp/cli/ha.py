"""`camapp ha remove`: delete cameras' Home Assistant entities."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from camapp.cli.common import EPILOG, Parser, run_config
from camapp.config import flags
from camapp.config.load import RunConfig, flag_name, validate_part
from camapp.config.schema import CameraSettings
from camapp.errors import EXIT_OK, CamappError
from camapp.publish import ha
from camapp.publish.mqtt import MqttPublisher

log = logging.getLogger("camapp")


def add(sub: argparse._SubParsersAction) -> None:
    h = sub.add_parser("ha", help="Home Assistant discovery", epilog=EPILOG)
    actions = h.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=Parser)
    r = actions.add_parser(
        "remove",
        help="delete cameras' Home Assistant entities (empty retained discovery configs)",
        epilog=EPILOG,
    )
    r.add_argument("--config", type=Path, help="the cameras' config file (broker, camera ids)")
    r.add_argument(
        "--camera-id",
        dest="camera_ids",
        action="append",
        metavar="ID",
        help="a camera to remove; repeat for several (default: the config's cameras)",
    )
    flags.add_flags(r, only=_mqtt_keys() | {"ha.prefix"})
    r.set_defaults(handler=remove)


def _mqtt_keys() -> set[str]:
    return {".".join(flag.path) for flag in flags.flags() if flag.path[0] == "mqtt"}


def remove(args: argparse.Namespace) -> int:
    """One connection per camera (its own ACL may allow only its own topics)."""
    config = run_config(args)
    ids = args.camera_ids or [camera.camera_id for camera in config.cameras]
    for camera_id in ids:
        # Checked as the setting is: a malformed id would be a malformed topic.
        validate_part(CameraSettings, {"camera_id": camera_id}, "command line", flag_name)
        _remove(config, camera_id)
        log.info("sent the removal of camera %s's Home Assistant entities", camera_id)
    return EXIT_OK


def _remove(config: RunConfig, camera_id: str) -> None:
    """Every config retained under the camera's discovery node id, whichever model announced
    it, found by subscribing and then deleted."""
    # Its own client id: reusing the camera's would disconnect a running camera.
    client_id = f"{config.mqtt.client_id or ha.node_id(camera_id)}-remove"
    publisher = MqttPublisher(config.mqtt, client_id, config.password)
    prefix = config.app.ha.prefix
    retained = ha.Retained(publisher, prefix, camera_id)
    publisher.watch(ha.configs_filter(prefix, camera_id), retained.note)
    publisher.on_connected(retained.ask)
    publisher.start()
    unreachable = (
        f"could not reach the broker at {config.mqtt.host}:{config.mqtt.port} "
        f"to remove camera {camera_id}"
    )
    if not retained.complete.wait(config.mqtt.connect_timeout + 10):
        publisher.close(timeout=1)
        if retained.connected:  # its own message never came back: the ACL keeps it from reading
            raise CamappError(
                f"the broker does not let this user read {ha.configs_filter(prefix, camera_id)}"
                " (deploy/mosquitto-acl.conf grants it): nothing removed"
            )
        raise CamappError(unreachable)
    retained.remove()
    if publisher.close(timeout=10):
        raise CamappError(unreachable)
    refused = publisher.refusal_error()
    if refused:  # the broker's ACL kept the entities: they are still there
        raise CamappError(refused)
