"""The simulator's admin route tables: lookup rules, body rules, and each table matching the endpoints its
module documents (so the docstring a newcomer reads is the table that runs)."""

from __future__ import annotations

import re
from typing import Any, cast

import pytest

from localdev.simulator import admin, graph, logs_ingestion, mda
from localdev.simulator.admin_routes import AdminCall, BodyError, find_route
from localdev.simulator.wire import SimRequest

TABLE = {
    ("GET", "faults"): "list",
    ("POST", "faults"): "add",
    ("*", "mda/"): "mda",
    ("GET", "secrets/"): "secret",
    ("GET", "secrets/special/"): "special",
    ("GET", "secrets/rotate"): "exact",
}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "faults", ("list", "")),
        ("POST", "faults", ("add", "")),
        ("DELETE", "faults", None),  # the path is known, the method is not
        ("PATCH", "mda/contoso/alerts", ("mda", "contoso/alerts")),  # "*" takes any method
        ("GET", "mda/", ("mda", "")),
        ("GET", "mda", None),  # a prefix needs its slash
        ("GET", "secrets/db", ("secret", "db")),
        ("GET", "secrets/special/x", ("special", "x")),  # the longer prefix wins
        ("GET", "secrets/rotate", ("exact", "")),  # an exact path wins over a prefix
        ("POST", "secrets/db", None),
        ("GET", "nothing", None),
    ],
)
def test_find_route(method: str, path: str, expected: tuple[str, str] | None) -> None:
    assert find_route(TABLE, method, path) == expected


def _call(body: bytes) -> AdminCall:
    return AdminCall(SimRequest("POST", "/_admin/x", {}, {}, body))


def test_the_body_is_a_json_object_or_nothing() -> None:
    assert _call(b"").body == {}
    assert _call(b'{"a": 1}').body == {"a": 1}
    for bad, reason in ((b"{nope", "must be JSON"), (b"[1]", "JSON object"), (b"null", "JSON object")):
        call = _call(bad)  # read on first use: an endpoint without a body ignores what was sent
        with pytest.raises(BodyError, match=reason):
            _ = call.body
        with pytest.raises(BodyError, match=reason):
            AdminCall.with_body(call.req)


# -- each table is what its module documents ----------------------------------------------------------------

_ENDPOINT = re.compile(r"^ {2,4}((?:GET|POST|DELETE|\*)(?:\|(?:GET|POST|DELETE))*) +(\S+)", re.MULTILINE)


def _documented(doc: str | None, section: str, strip: str = "") -> set[tuple[str, str]]:
    """(method, path) pairs listed under `section` (up to the next blank line); `{...}` ends a prefix path."""
    assert doc is not None and section in doc
    after_heading = doc.split(section, 1)[1].split("\n", 1)[1].lstrip("\n")
    block = after_heading.split("\n\n", 1)[0]
    found: set[tuple[str, str]] = set()
    for methods, listed in _ENDPOINT.findall(block):
        path = listed.removeprefix(strip).split("{", 1)[0]
        found.update((method, path) for method in methods.split("|"))
    return found


def _routes(service_class: Any) -> set[tuple[str, str]]:
    service = object.__new__(service_class)  # the table only binds methods: no service state needed
    table = cast(dict[tuple[str, str], Any], service._admin_routes())
    return set(table) - {("GET", "")}  # "" is an undocumented alias of "state"


def test_the_admin_table_is_the_documented_list() -> None:
    service = admin.AdminService(cast(Any, None), dict)
    documented = _documented(admin.__doc__, "Endpoints:", strip="/_admin/")
    assert documented and set(service.routes) - {("GET", "")} == documented


@pytest.mark.parametrize(
    ("module", "service_class", "section"),
    [
        (mda, mda.MdaService, "Admin subpaths"),
        (graph, graph.GraphService, "Changes over time (admin"),
        (logs_ingestion, logs_ingestion.LogsIngestionService, "Admin subpaths"),
    ],
)
def test_each_service_table_is_its_documented_list(module: Any, service_class: Any, section: str) -> None:
    documented = _documented(module.__doc__, section)
    assert documented and _routes(service_class) == documented
