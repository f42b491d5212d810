"""mcasctl's dispatcher and the `host` / `simulate` commands: exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

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


@pytest.mark.integration  # starts a private Azurite
def test_host_once_with_a_private_azurite_drains_and_exits(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", "restored-after-the-test")  # --azurite replaces it
    code = cli.main(["host", "--once", "--azurite", "--settings-file", str(tmp_path / "none.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "ping: http GET /api/ping (anonymous)" in out
    assert "queues: 0 succeeded, 0 failed, 0 poisoned" in out


def test_every_command_reads_local_settings_json_from_the_working_directory(tmp_path, monkeypatch):
    import os

    from mcasctl.settings_file import applied

    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"MCAS_TEST_ONLY": "from-file"}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MCAS_TEST_ONLY", raising=False)
    with applied(None) as added:
        assert added == ["MCAS_TEST_ONLY"] and os.environ["MCAS_TEST_ONLY"] == "from-file"
    assert "MCAS_TEST_ONLY" not in os.environ  # in-process callers get their environment back
    monkeypatch.setenv("MCAS_TEST_ONLY", "from-env")
    with applied(None) as added:
        assert added == [] and os.environ["MCAS_TEST_ONLY"] == "from-env"  # the environment wins


def test_local_settings_values_are_read(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"A": "1", "B": 2}}))
    assert settings_file.load_local_settings(path) == {"A": "1", "B": "2"}
    assert settings_file.load_local_settings(tmp_path / "missing.json") == {}
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match=r"local\.settings\.json"):
        settings_file.load_local_settings(path)


def _clean_env() -> dict[str, str]:
    import os

    owned = ("MCAS_", "AzureWebJobsStorage", "REQUESTS_CA_BUNDLE", "IDENTITY_")
    return {k: v for k, v in os.environ.items() if not k.startswith(owned)}


def _mcasctl(*argv: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "mcasctl.cli", *argv],
        env=_clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_simulate_writes_the_environment_that_mcasctl_and_the_host_then_use(tmp_path, simulator_pki):
    """`simulate --azurite --env-file X.json`: with nothing but that file, token, pull and the timer work."""
    import signal
    import sys
    import time

    state, settings = tmp_path / "sim", tmp_path / "local.settings.json"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "mcasctl.cli", "simulate", "--state-dir", str(state), "--azurite"),
            *("--env-file", str(settings), "--pki-dir", str(simulator_pki.directory)),
        ],
        env=_clean_env(),
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not settings.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no environment file"
            time.sleep(0.2)
        values = json.loads(settings.read_text())["Values"]
        assert {
            "MCAS_API_URL",
            "MCAS_TENANT_ID",
            "MCAS_CLIENT_ID",
            "MCAS_KEY_VAULT_URL",
            "REQUESTS_CA_BUNDLE",
        } <= set(values)
        assert values["MCAS_ALERT_SINKS"] == "queue,blob" and values["AzureWebJobsStorage"]

        token = _mcasctl("--settings-file", str(settings), "token", "--json", cwd=root)
        assert token.returncode == 0, token.stderr
        assert json.loads(token.stdout)["mode"] == "application"

        out = tmp_path / "alerts.ndjson"
        pull = _mcasctl(
            "--settings-file",
            str(settings),
            "alerts",
            "pull",
            "--lookback",
            "30d",
            "--out",
            str(out),
            "--json",
            cwd=root,
        )
        assert pull.returncode == 0, pull.stderr
        assert (
            json.loads(pull.stdout)[0]["alerts"] == len(out.read_text().splitlines()) > 0
        )  # seeded by default
        assert "page 1:" in pull.stderr  # a progress line per page when not on a terminal

        timer = _mcasctl(
            "host", "--run-timer", "alerts_pull_timer", "--settings-file", str(settings), cwd=root
        )
        assert timer.returncode == 0, timer.stderr
        # The timer fans out: one message for the tenant, which the host's queue function then pulls.
        assert "1 tenants, 1 queued" in timer.stdout
        assert "queues: 1 succeeded, 0 failed, 0 poisoned" in timer.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
