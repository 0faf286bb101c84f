"""`camapp ha remove`: delete cameras' Home Assistant entities."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from camapp import models
from camapp.cli.common import EPILOG, Parser, run_config
from camapp.config import flags
from camapp.config.load import RunConfig, flag_name, validate_part
from camapp.config.schema import CameraSettings
from camapp.errors import EXIT_OK, CamappError, ConfigError
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


def _labels(config: RunConfig, camera_id: str) -> list[str]:
    """The classes of the camera's model, whose capture buttons it may have announced; none
    when the model cannot be read here (the buttons of a trained model then stay)."""
    camera = next((c for c in config.cameras if c.camera_id == camera_id), config.cameras[0])
    try:
        return models.read_labels(models.resolve_model(camera.model), None)
    except ConfigError:
        return []


def remove(args: argparse.Namespace) -> int:
    """One connection per camera (its own ACL may allow only its own topics)."""
    config = run_config(args)
    ids = args.camera_ids or [camera.camera_id for camera in config.cameras]
    for camera_id in ids:
        # Checked as the setting is: a malformed id would be a malformed topic.
        validate_part(CameraSettings, {"camera_id": camera_id}, "command line", flag_name)
        # Its own client id: reusing the camera's would disconnect a running camera.
        client_id = f"{config.mqtt.client_id or ha.node_id(camera_id)}-remove"
        publisher = MqttPublisher(config.mqtt, client_id, config.password)
        ha.remove(publisher, config.app.ha.prefix, camera_id, _labels(config, camera_id))
        publisher.start()
        if publisher.close(timeout=10):
            raise CamappError(
                f"could not reach the broker at {config.mqtt.host}:{config.mqtt.port} "
                f"to remove camera {camera_id}"
            )
        refused = publisher.refusal_error()
        if refused:  # the broker's ACL kept the entities: they are still there
            raise CamappError(refused)
        log.info("sent the removal of camera %s's Home Assistant entities", camera_id)
    return EXIT_OK
