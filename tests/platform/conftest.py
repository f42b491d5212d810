"""Fixtures shared by the reliability tests."""

from tests.platform.metric_reader import reader

__all__ = ["reader"]
