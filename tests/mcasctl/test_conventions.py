"""CLI conventions: --version, documented exit codes, one help text per command, --lookback needs a unit,
`discovery sources`, and the pull's progress (terminal line with waits, or a line per page)."""

from __future__ import annotations

import io
import json
import threading

import pytest

from mcasctl import cli
from mcasctl.errors import Interrupted
from mcasctl.pullrun import Progress, StopControl, StoppableLimiter
from shared.ratelimit import LocalRateLimiter


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_version_and_the_exit_codes_in_the_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("mcasctl 0.")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 done, 1 failed, 2 usage error or refused request, 130 interrupted" in text


@pytest.mark.parametrize("command", ["token", "login", "logout"])
def test_token_login_and_logout_each_have_their_own_help(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = capsys.readouterr().out
    assert "shared helper" not in text and "dispatcher" not in text  # no internals
    others = {"token", "login", "logout"} - {command}
    assert not any(f"`{other} " in text for other in others)


def test_host_help_keeps_its_usage_lines(capsys):
    with pytest.raises(SystemExit):
        cli.main(["host", "--help"])
    text = capsys.readouterr().out
    assert "\n  mcasctl host --once " in text and "\n  mcasctl host --azurite " in text


def test_a_lookback_without_a_unit_is_a_usage_error(capsys):
    assert cli.main(["alerts", "pull", "--lookback", "24"]) == 2
    err = capsys.readouterr().err
    assert "--lookback needs a unit, e.g. 24h, 24d or 90m" in err


def test_a_lookback_that_is_not_a_duration_is_a_usage_error(capsys):
    assert cli.main(["alerts", "pull", "--lookback", "1.5x"]) == 2
    err = capsys.readouterr().err
    assert "--lookback must be a duration such as 90m, 24h or 7d, got '1.5x'" in err


def test_discovery_sources_lists_the_valid_ids(capsys):
    assert cli.main(["discovery", "sources"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "PALO_ALTO" in lines and "ZSCALER" in lines
    assert any(line.startswith("JUNIPER_SRX  (dropped from the docs") for line in lines)
    assert cli.main(["discovery", "sources", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert len(listing["documented"]) == 71 and "CUSTOM_PARSER" in listing["legacy"]


def test_progress_on_a_terminal_shows_pages_and_a_wait_with_its_reason():
    from shared.alerts.sinks import AlertBatch
    from tests.alerts.fakes import T0_MS

    tty = FakeTty()
    progress = Progress(tty)
    alert: object = {"id": "a" * 24, "timestamp_ms": T0_MS}
    progress.page(AlertBatch.build("contoso", "alerts", "k", [alert] * 3))  # type: ignore[list-item]
    now = [0.0]

    def clock() -> float:
        now[0] += 0.5
        return now[0]

    StopControl(progress, clock=clock).sleeper("contoso", "request budget of 30/min")(2.0)
    drawn = tty.getvalue()
    assert "\r" in drawn and "contoso: 1 pages, 3 alerts" in drawn
    assert (
        "waiting 2 s: request budget of 30/min" in drawn or "waiting 1 s: request budget of 30/min" in drawn
    )


def test_progress_elsewhere_is_one_line_per_page():
    from shared.alerts.sinks import AlertBatch
    from tests.alerts.fakes import T0_MS

    out = io.StringIO()
    progress = Progress(out)
    alert: object = {"id": "a" * 24, "timestamp_ms": T0_MS}
    progress.page(AlertBatch.build("contoso", "alerts", "k", [alert] * 2))  # type: ignore[list-item]
    progress.page(AlertBatch.build("contoso", "alerts", "k", [alert] * 5))  # type: ignore[list-item]
    assert out.getvalue().splitlines() == [
        "contoso: page 1: 2 alerts up to 2026-01-01T00:00:00.000Z (2 in all)",
        "contoso: page 2: 5 alerts up to 2026-01-01T00:00:00.000Z (7 in all)",
    ]


def test_a_stop_ends_a_budget_wait_at_once():
    stop = StopControl()
    waits: list[float] = []
    sleep = stop.sleeper("t", "x")

    def recorded(seconds: float) -> None:
        waits.append(seconds)
        sleep(seconds)

    limiter = StoppableLimiter(LocalRateLimiter(1, 3600), recorded)
    limiter.acquire()  # the one request of the hour
    threading.Timer(0.2, stop.event.set).start()
    with pytest.raises(Interrupted):
        limiter.acquire()  # would wait an hour
    assert waits and waits[0] > 3000
