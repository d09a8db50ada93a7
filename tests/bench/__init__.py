"""Benchmarks, run as plain scripts (``python -m tests.bench.<name>``); see README.md here
and docs/benchmarks.md.

``pytest`` does not collect this package (``norecursedirs`` in ``pyproject.toml``).
"""
