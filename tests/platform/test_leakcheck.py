"""The secret-leak sweep plugin (tests/fixtures/leakcheck.py), run in an inner pytest session: it fails the
session on a Key Vault secret, a JWT or a webhook signature in logs or output, names where it was found
without repeating the secret, honours `leakcheck_exempt`, and stays out of the way without a simulator."""

from __future__ import annotations

import pytest

from tests.fixtures.processes import inner_pytest

PLUGINS = ("-p", "tests.fixtures.simulator", "-p", "tests.fixtures.leakcheck")

LEAKY = """
import logging
import pytest

def test_logs_the_client_secret(simulator):
    value = simulator.secret_value("mcas-client-secret")
    logging.getLogger("inner.app").info("connecting with %s", value)

def test_prints_a_token(simulator):
    print("header: Bearer " + simulator.mint_token(app="daemon"))

def test_rotated_value_is_learned(simulator):
    simulator.set_secret("mcas-webhook-secret", "whsec_innerRotatedValue1234")
    logging.getLogger("inner.jobs").warning("secret is whsec_innerRotatedValue1234")

@pytest.mark.leakcheck_exempt("proves redaction on a deliberately logged token")
def test_exempt(simulator):
    logging.getLogger("inner.exempt").info("v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=")
"""

CLEAN_WITHOUT_SIMULATOR = """
import logging

def test_no_simulator_no_sweep():
    logging.getLogger("inner").info("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")
"""


@pytest.mark.integration  # the inner session starts a simulator
def test_leaks_fail_the_session_and_are_reported_masked(tmp_path):
    result = inner_pytest(tmp_path, LEAKY, *PLUGINS)
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    assert "4 passed" in out
    assert "secret leak sweep failed" in out
    assert (
        "Key Vault secret mcas-client-secret in log record of logger 'inner.app' (INFO) during "
        "test_inner.py::test_logs_the_client_secret: …connecting with "
    ) in out
    jwt_line = "a JWT (bearer token or assertion) in stdout call during test_inner.py::test_prints_a_token"
    assert out.count(jwt_line) == 1
    assert "Key Vault secret mcas-webhook-secret in log record of logger 'inner.jobs'" in out
    assert "whsec_innerRotatedValue1234" not in out  # only the first characters are shown
    assert "inner.exempt" not in out


def test_without_a_simulator_the_sweep_is_inactive(tmp_path):
    result = inner_pytest(tmp_path, CLEAN_WITHOUT_SIMULATOR, *PLUGINS)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "leakcheck" not in result.stdout
