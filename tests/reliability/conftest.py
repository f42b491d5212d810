"""Fixtures shared by the reliability tests."""

from tests.reliability.metric_reader import reader

__all__ = ["reader"]
