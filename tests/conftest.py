"""Shared fixtures: every test gets its own empty cache, so no test reads or writes ~/.cache."""

from __future__ import annotations

import os

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


@pytest.fixture
def one_thread():
    """Rounding (and so a rare near-tie) depends on the thread count: tests that compare against a measured
    number set it themselves, whatever the caller's environment, and restore it after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true (set by .ci/run) a skipped test is a failure: CI has every dependency, the browser and
    the data installed, so a skip there means a test silently did not run. xfails are left alone."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and _under_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"



@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    """On a pytest-xdist worker under ``--dist loadgroup``, every test marked ``xdist_group`` must carry its group in
    its node id (``...@group``), or the scheduler spreads the group over the workers and each worker runs the group's
    module fixtures again (a second Colab venv, a second site build into the same folder). Say so loudly."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    lost = [i.nodeid for i in session.items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
    if lost:
        raise pytest.UsageError(f"pytest-xdist did not tag {len(lost)} xdist_group tests (e.g. {lost[0]}): this "
                                "pytest and pytest-xdist do not work together; pyproject.toml pins pytest < 9")


def pytest_collection_modifyitems(config, items):
    """The longest tests first: the cpu re-run of a notebook, then the smoke runs of the notebooks, then the rest,
    each group in its collection order. With pytest-xdist handing tests out one by one, the long ones then start
    while the many short ones can still fill the other worker, instead of ending the run on one busy worker."""
    def rank(item) -> int:
        if "cpu_rerun" in item.name:
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)                                        # stable: collection order within each group
