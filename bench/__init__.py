"""Benchmarks, each run as a script: `.venv/bin/python bench/<name>.py` (`_harness` is what they share)."""
