"""Settings: declared once, and everything derived from the declaration agrees with it."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest

from camapp.config import docs, flags
from camapp.config.load import build, read_file
from camapp.errors import ConfigError
from tests.conftest import REPO, camapp_env, run_camapp


def test_docs_option_table_is_generated_from_the_declarations() -> None:
    assert (REPO / "docs" / "configuration.md").read_text() == docs.table()


def test_every_setting_has_a_flag_a_key_and_a_description() -> None:
    options = {flag.option for flag in flags.flags()}
    assert {"--mqtt-buffer-messages", "--no-realtime", "--no-ha-discovery", "--loop"} <= options
    assert len(options) == len(list(flags.flags()))  # no two settings share a flag
    for flag in flags.flags():
        assert flag.field.description, flag.path
    # Each flag maps to its setting explicitly: a table's key is found under its table.
    values = flags.values(_parse(["--mqtt-port", "1884", "--picamera-main-size", "640x480"]))
    assert values == {"mqtt": {"port": 1884}, "picamera": {"main_size": "640x480"}}


def _parse(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    flags.add_flags(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    "key", ["camera_id", "mqtt.base_topic", "mqtt.client_id", "ha.prefix"]
)  # fmt: skip
def test_a_trailing_newline_is_refused(key: str) -> None:
    # `re.match(...$)` accepted "cam0\n", which the broker then drops as malformed.
    *table, name = key.split(".")
    value = {name: "cam0\n"}
    with pytest.raises(ConfigError, match=f"{name}: must be"):
        build({table[0]: value} if table else value, {}, "c.toml")


def test_a_topic_of_thousands_of_levels_is_refused() -> None:
    with pytest.raises(ConfigError, match="base_topic: must be topic levels"):
        build({"mqtt": {"base_topic": "/".join(["a"] * 3000)}}, {}, "c.toml")


def test_a_long_bad_value_is_echoed_short() -> None:
    with pytest.raises(ConfigError) as error:
        build({"camera_id": "x" * 100_000}, {}, "c.toml")
    assert len(str(error.value)) < 250 and "..." in str(error.value)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    """362 bytes that expand to gigabytes once its aliases are followed."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 9):
        refs = ", ".join([f"*a{n - 1}"] * 9)
        lines.append(f"a{n}: &a{n} [{refs}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines).replace("a8: &a8", "camera_id: &a8") + "\n")
    code = (
        # VmHWM, not ru_maxrss: that keeps the pytest parent's peak across fork and exec.
        "import sys; from camapp import cli; code = cli.main(sys.argv[1:]); "
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
        "print(hwm.split()[1], file=sys.stderr); sys.exit(code)"
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "--config", str(bomb)],
        env=camapp_env(REPO / "models"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and time.monotonic() - started < 20, proc.stderr
    *_, error, rss_kb = proc.stderr.strip().splitlines()
    assert error.startswith("camapp: error: ") and "YAML aliases" in error, proc.stderr
    assert len(error) < 300
    assert int(rss_kb) < 300_000  # no expansion: what importing camapp costs


def test_a_deeply_nested_config_is_a_usage_error(tmp_path: Path, model_dir: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("camera_id: " + "[" * 5000 + "]" * 5000 + "\n")
    proc = run_camapp(["run", "--config", str(deep)], model_dir)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr


def test_read_file_keeps_lists_of_tables(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("cameras:\n  - camera_id: a\n    source: x.mp4\n")
    config = build(read_file(path), {}, str(path))
    assert [c.camera_id for c in config.cameras] == ["a"]
    assert "--cameras" not in {flag.option for flag in flags.flags()}  # a file-only setting


def test_a_command_may_give_a_setting_its_own_help() -> None:
    """`helps` replaces the declared help, of a valued flag and of an on/off one alike."""
    parser = argparse.ArgumentParser()
    own = {"model": "detector file or known name", "realtime": "turn off: as fast as it reads"}
    flags.add_flags(parser, only={"model", "realtime"}, helps=own)
    shown = " ".join(parser.format_help().split())
    assert own["model"] in shown and own["realtime"] in shown
