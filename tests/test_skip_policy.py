"""The default suite skips nothing but tests marked as needing root, a GPU or the network-namespace
cluster: tests/skip_policy.py turns any other skip into a failure (run here on a small suite)."""

from __future__ import annotations

MARKERS = """
[pytest]
markers =
    needs_root: r
    needs_gpu: g
    needs_netns: n
"""


def test_an_unmarked_skip_fails_and_a_marked_one_skips(pytester):
    pytester.makeini(MARKERS)
    pytester.makepyfile(
        test_some="""
        import pytest

        @pytest.fixture
        def data():
            pytest.skip("data set absent")

        def test_unmarked_skip():
            pytest.skip("real data set is absent")

        def test_unmarked_fixture_skip(data):
            pass

        @pytest.mark.needs_root
        def test_marked_skip():
            pytest.skip("needs root")

        @pytest.mark.needs_gpu
        @pytest.mark.skipif(True, reason="no GPU")
        def test_marked_skipif():
            pass

        @pytest.mark.xfail(reason="known")
        def test_xfail_stays_xfail():
            assert False

        def test_passes():
            pass
    """
    )
    result = pytester.runpytest("-p", "skip_policy", "-rA")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=2, xfailed=1)  # errors: at setup
    result.stdout.fnmatch_lines(
        [
            "*test skipped, but only tests marked needs_root, needs_gpu, needs_netns may skip: "
            "*real data set is absent*",
        ]
    )
    failed = {
        r.nodeid.split("::")[1]
        for r in result.reprec.getreports("pytest_runtest_logreport")
        if r.failed
    }
    assert failed == {"test_unmarked_skip", "test_unmarked_fixture_skip"}


def test_a_module_skipping_at_import_fails_even_when_marked(pytester):
    pytester.makeini(MARKERS)
    pytester.makepyfile(
        test_plain="import pytest\npytest.importorskip('no_such_package_here')\n"
        "def test_x():\n    pass\n",
        test_cluster="import pytest\npytestmark = pytest.mark.needs_netns\n"
        "pytest.skip('needs root for ip netns', allow_module_level=True)\n"
        "def test_y():\n    pass\n",
    )
    result = pytester.runpytest("-p", "skip_policy")
    result.stdout.fnmatch_lines(["*module test_plain.py skipped, but only tests marked*"])
    assert result.ret != 0
    collect = {
        r.nodeid: r.outcome
        for r in result.reprec.getreports("pytest_collectreport")
        if r.nodeid.endswith(".py")
    }
    # pytestmark is read after the import that skipped: the module cannot have declared it
    assert collect == {"test_plain.py": "failed", "test_cluster.py": "failed"}
