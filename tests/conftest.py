"""Shared fixtures: every test gets its own empty cache, so no test reads or writes ~/.cache."""

from __future__ import annotations

import pytest

from course_lib.data import fashion_mnist


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path_factory, monkeypatch):
    """Point $COURSE_CACHE at a new empty folder and forget Fashion-MNIST loaded by earlier tests.

    ``fashion_mnist`` is memoized by split only, so a dataset loaded under one environment
    ($COURSE_DATA, a patched search path) would otherwise leak into the next test.
    $COURSE_PROFILE is left alone: the Makefile sets it to smoke.
    """
    cache = tmp_path_factory.mktemp("course_cache")
    monkeypatch.setenv("COURSE_CACHE", str(cache))
    fashion_mnist.cache_clear()  # the function itself, even while a test has patched the module attribute
    yield cache
    fashion_mnist.cache_clear()
