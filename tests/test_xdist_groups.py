"""make test's parallel run keeps each xdist_group on one worker.

The tests of a group share one expensive session fixture; split over two
workers, each would build it again and the suite would take minutes longer
without a word (pytest 9.2 with pytest-xdist 3.8 does exactly that).
"""

import pytest


@pytest.mark.xdist_group("xdist-check")
def test_a_grouped_test_carries_its_group_in_its_id(request):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only under pytest-xdist's --dist loadgroup, as make test runs")
    assert request.node.nodeid.endswith("@xdist-check"), request.node.nodeid
