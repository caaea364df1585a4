"""pytest plugin (loaded by conftest.py): a skip is a failure unless the test is marked as one
that needs what a machine may lack. Only root, a GPU and the network-namespace cluster may be
missing; everything else a test needs ships with the repository or its declared dependencies,
so a test that skips for any other reason (absent data, a missing package) fails the run.
"""

from __future__ import annotations

import pytest

# The markers (registered in pyproject.toml) that allow a test to skip.
MAY_SKIP = ("needs_root", "needs_gpu", "needs_netns")


def _may_skip(node) -> bool:
    return any(node.get_closest_marker(name) for name in MAY_SKIP)


def _unmarked_skip(report, what: str) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"{what} skipped, but only tests marked {', '.join(MAY_SKIP)} may skip: {reason}"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and not _may_skip(item):
        _unmarked_skip(report, "test")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # A module that skips while it is imported has not yet declared its markers (pytestmark is
    # read afterwards), so no module may skip: a marked test or its fixture skips instead.
    outcome = yield
    report = outcome.get_result()
    if report.skipped:
        _unmarked_skip(report, f"module {collector.nodeid}")
