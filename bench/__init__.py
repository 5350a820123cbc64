"""Benchmarks, each run as a script (``.venv/bin/python bench/<name>.py``); a package so that its
modules (``bench.ivr``, ``bench.store``) do not shadow the project's ``ivr`` and ``store`` packages for mypy."""
