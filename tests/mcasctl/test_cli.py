"""mcasctl's dispatcher and the `host` / `simulate` commands: exit codes and one-line errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest

from mcasctl import cli, settings_file
from shared.errors import ConfigurationError


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "host" in capsys.readouterr().err


def test_expected_errors_are_one_line_without_traceback(capsys, tmp_path):
    code = cli.main(["host", "--run-timer", "nope", "--settings-file", str(tmp_path / "none.json")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("mcasctl host: error: --run-timer 'nope' is not a timer function")
    assert "failed" not in err
    assert "Traceback" not in err


def test_unknown_arguments_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["host", "--bogus"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_host_once_with_a_private_azurite_drains_and_exits(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", "restored-after-the-test")  # --azurite replaces it
    code = cli.main(["host", "--once", "--azurite", "--settings-file", str(tmp_path / "none.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "ping: http GET /api/ping (anonymous)" in out
    assert "queues: 0 succeeded, 0 failed, 0 poisoned" in out


def test_local_settings_values_are_read(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"A": "1", "B": 2}}))
    assert settings_file.load_local_settings(path) == {"A": "1", "B": "2"}
    assert settings_file.load_local_settings(tmp_path / "missing.json") == {}
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match=r"local\.settings\.json"):
        settings_file.load_local_settings(path)


def test_simulate_delegates_to_the_simulator_module_with_extra_arguments(monkeypatch, tmp_path):
    launched: list[list[str]] = []

    class FakeChild:
        def __init__(self, command: list[str], **kwargs: object) -> None:
            launched.append(command)

        def wait(self, timeout: float | None = None) -> int:
            return 0

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(subprocess, "Popen", FakeChild)
    state = tmp_path / "state"
    assert cli.main(["simulate", "--state-dir", str(state), "--mda-tenants", "contoso,fabrikam"]) == 0
    assert launched[0][1:] == [
        "-m",
        "localdev.simulator",
        "--state-dir",
        str(state),
        "--mda-tenants",
        "contoso,fabrikam",
    ]
    assert state.is_dir()
