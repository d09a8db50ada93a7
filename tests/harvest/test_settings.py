"""One frozen Settings from flags, HARVEST_* variables and a TOML file (issue 2, item 2)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harvest.settings import Settings, SettingsError, parse


def test_defaults_match_the_issue() -> None:
    s = parse([], {})
    assert (s.host, s.port, s.harvest_port, s.unified_port) == ("127.0.0.1", 8080, 8514, 23080)
    assert s.data_dir == Path(".harvest")
    assert s.memory is False
    assert s.max_payload_bytes == 1024
    assert s.keepalive_timeout == 65.0
    assert (s.operator_id, s.auth_key_id, s.auth_key) == (
        "OP0000000000",
        "keyId-harvest-emulator",
        "secret-harvest-emulator",
    )
    assert (s.email, s.password) == ("emulator@example.com", "emulator")
    assert s.default_imsi == "001010000000001"


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().port = 1  # type: ignore[misc]


def test_flags_beat_environment_which_beats_the_file(tmp_path: Path) -> None:
    config = tmp_path / "h.toml"
    config.write_text('port = 1000\nhost = "0.0.0.0"\nmemory = true\nmax_payload_bytes = 10\n')
    s = parse(
        ["--config", str(config), "--port", "3000"],
        {"HARVEST_PORT": "2000", "HARVEST_MAX_PAYLOAD_BYTES": "20"},
    )
    assert s.port == 3000
    assert s.max_payload_bytes == 20
    assert s.host == "0.0.0.0"
    assert s.memory is True


def test_the_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "h.toml"
    config.write_text('operator_id = "OP1234567890"\n')
    assert parse([], {"HARVEST_CONFIG": str(config)}).operator_id == "OP1234567890"


def test_port_zero_means_pick_a_free_port() -> None:
    assert parse(["--port", "0"], {}).port == 0


@pytest.mark.parametrize(
    ("argv", "environ", "file_text", "message"),
    [
        pytest.param(
            [], {"HARVEST_PROT": "1"}, None, "unknown variable HARVEST_PROT", id="unknown-env"
        ),
        pytest.param([], {}, "prot = 1\n", "unknown setting 'prot'", id="unknown-key"),
        pytest.param([], {}, "port = \n", "not valid TOML", id="bad-toml"),
        pytest.param([], {}, 'port = "8080"\n', "port must be a whole number", id="toml-type"),
        pytest.param([], {}, "memory = 1\n", "memory must be true or false", id="toml-bool"),
        pytest.param(
            ["--port", "70000"], {}, None, "port must be a port from 0 to 65535", id="port-range"
        ),
        pytest.param(["--port", "http"], {}, None, "port must be a whole number", id="port-text"),
        pytest.param(
            [], {"HARVEST_MEMORY": "maybe"}, None, "must be true or false", id="strict-bool"
        ),
        pytest.param(
            ["--max-payload-bytes", "0"], {}, None, "max_payload_bytes", id="payload-zero"
        ),
        pytest.param(["--keepalive-timeout", "-1"], {}, None, "keepalive_timeout", id="keepalive"),
        pytest.param(["--log-level", "loud"], {}, None, "log_level", id="log-level"),
        pytest.param(["--operator-id", "XX1"], {}, None, "operator_id", id="operator-id"),
        pytest.param(["--default-imsi", "12ab"], {}, None, "default_imsi", id="imsi"),
        pytest.param(
            ["--default-session-address", "nowhere"],
            {},
            None,
            "default_session_address",
            id="address",
        ),
        pytest.param(["--nonsense"], {}, None, "unrecognized arguments", id="unknown-flag"),
    ],
)
def test_bad_settings_fail_with_a_message_naming_the_source(
    tmp_path: Path,
    argv: list[str],
    environ: dict[str, str],
    file_text: str | None,
    message: str,
) -> None:
    if file_text is not None:
        config = tmp_path / "h.toml"
        config.write_text(file_text)
        argv = [*argv, "--config", str(config)]
    with pytest.raises((SettingsError, SystemExit), match=message) as caught:
        parse(argv, environ)
    assert caught.type is SettingsError


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        parse(["--config", str(tmp_path / "nope.toml")], {})


def test_booleans_accept_flags_in_both_directions() -> None:
    assert parse(["--memory"], {}).memory is True
    assert parse(["--no-control"], {"HARVEST_CONTROL": "true"}).control is False
    assert parse([], {"HARVEST_CONTROL": "off"}).control is False


def test_memory_has_no_database_path(tmp_path: Path) -> None:
    assert parse(["--memory"], {}).database_path is None
    s = parse(["--data-dir", str(tmp_path)], {})
    assert s.database_path == tmp_path / "harvest.sqlite3"


def test_unrelated_environment_is_ignored() -> None:
    assert parse([], {"HOME": "/root", "HARVESTER": "x"}).port == 8080


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Settings)])
def test_every_setting_is_in_the_settings_table(name: str) -> None:
    table = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    flag = "--" + name.replace("_", "-")
    assert f"| `{name}` | `{flag}` | `HARVEST_{name.upper()}` |" in table
