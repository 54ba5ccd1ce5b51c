"""`make test` runs `--dist loadgroup`: the SLURM tests must share one worker (one of them stops slurmctld, which
fails any SLURM test running beside it in the other worker) and tests sharing a module-scoped fixture are grouped
so that it is built once (conftest.py). pytest 9.2 with pytest-xdist 3.8 dropped every group without a word
(pytest-xdist#1386: xdist marks a group by rewriting the node id, which pytest 9.2 no longer reads), so the
groups are checked here, from inside a worker, rather than assumed."""
import pytest

pytestmark = pytest.mark.xdist_group("groups-check")


def test_a_grouped_test_runs_in_its_group(request):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not in an xdist worker under --dist loadgroup")
    assert request.node.nodeid.endswith("@groups-check"), (
        f"{request.node.nodeid}: --dist loadgroup ignored the xdist_group mark (pytest-xdist#1386: pytest>=9.2 "
        "needs a pytest-xdist that fixes it; pyproject.toml pins pytest below 9.2 until then)")
