"""The filter builder: the API's filter JSON, immutable, operators checked."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.mda.filters import Filter, filter_from_json, to_epoch_ms


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda f: f.gte("date", 1_700_000_000_000), {"date": {"gte": 1_700_000_000_000}}),
        (lambda f: f.gte("date", dt.datetime(2024, 1, 1, tzinfo=dt.UTC)), {"date": {"gte": 1704067200000}}),
        (lambda f: f.eq("severity", 1, 2), {"severity": {"eq": [1, 2]}}),
        (lambda f: f.where("severity", "eq", 2), {"severity": {"eq": [2]}}),
        (lambda f: f.ids(["a", "b"]).neq("id", "c"), {"id": {"eq": ["a", "b"], "neq": ["c"]}}),
        (lambda f: f.gte("date", 1).lte("date", 5), {"date": {"gte": 1, "lte": 5}}),
        (lambda f: f.where("alertOpen", "eq", True), {"alertOpen": {"eq": [True]}}),
        (
            lambda f: f.where("date", "range", [{"start": 1, "end": 2}]),
            {"date": {"range": [{"start": 1, "end": 2}]}},
        ),
        (lambda f: f.where("read", "isset", True).without("read"), {}),
    ],
)
def test_filter_builder(build, expected):
    assert build(Filter()).to_json() == expected


def test_filter_is_immutable_and_checks_operators():
    base = Filter().eq("severity", 2)
    derived = base.gte("date", 5)
    assert base.to_json() == {"severity": {"eq": [2]}} and derived != base
    with pytest.raises(ValueError, match="unknown filter operator"):
        Filter().where("date", "greater", 1)
    with pytest.raises(ValueError):
        filter_from_json({"severity": 2})
    assert filter_from_json({"severity": {"eq": 2}}).to_json() == {"severity": {"eq": 2}}
    assert to_epoch_ms(dt.datetime(1970, 1, 1, 0, 0, 1)) == 1000
