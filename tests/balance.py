"""The order the tests run in under pytest-xdist, so that its workers finish together.

`--dist worksteal` first gives each of N workers a contiguous 1/N of the collected tests, then moves
tests still queued from the tail of a busy worker's share to an idle one. A test that takes many
seconds and sits at the end of a share cannot be moved once started, and the whole run waits for it.
So the tests are first laid out in N lanes of the sizes worksteal deals out, the slow files spread
over the lanes (the slowest first, each to the lane with the least work so far), each lane starting
with its slowest tests; the quick tests fill the rest and are what gets stolen.

The costs below are rough seconds per test, from `pytest --durations` on a shared 2-core machine; a
wrong figure only makes the run a little less even, never a test wrong. Tests run in the same order
within a file, and whole files stay together unless one has to be split to fill a lane.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

DEFAULT_SECONDS = 0.3
# Path suffix (from the tests folder) -> rough seconds per test.
SECONDS_PER_TEST = {
    "e2e/test_browser_": 7.0,  # every browser test file
    "e2e/": 1.0,  # the other end-to-end tests
    "test_replica_continuity.py": 12.0,
    "test_wheel.py": 10.0,
    "test_replica_start_up.py": 8.0,
    "test_replica_workers.py": 6.0,
    "test_start_up.py": 3.0,
    "test_devrun.py": 4.0,
    "test_secrets_at_rest.py": 2.5,
}


def _seconds(relative: str) -> float:
    for prefix, seconds in SECONDS_PER_TEST.items():
        if relative.startswith(prefix) or relative.endswith(prefix):
            return seconds
    return DEFAULT_SECONDS


def _lane_sizes(total: int, workers: int) -> list[int]:
    """How many tests worksteal first sends to each worker (`WorkStealingScheduling.check_schedule`)."""
    sizes, left = [], total
    for index in range(workers):
        size = left // (workers - index)
        sizes.append(size)
        left -= size
    return sizes


def in_lanes(items: Sequence[pytest.Item], workers: int, tests_root: str) -> list[pytest.Item]:
    """`items` laid out in `workers` lanes of equal size and about equal cost, one after another."""
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(str(item.path), []).append(item)

    def cost(path: str) -> float:
        relative = path.removeprefix(tests_root).lstrip("/")
        return _seconds(relative) * len(files[path])

    sizes = _lane_sizes(len(items), workers)
    lanes: list[list[pytest.Item]] = [[] for _ in range(workers)]
    work = [0.0] * workers
    for path in sorted(files, key=cost, reverse=True):  # stable: equal costs keep the collection order
        tests = files[path]
        per_test = cost(path) / len(tests)
        while tests:
            open_lanes = [lane for lane in range(workers) if len(lanes[lane]) < sizes[lane]]
            lane = min(open_lanes, key=lambda index: (work[index], index))
            taken, tests = tests[: sizes[lane] - len(lanes[lane])], tests[sizes[lane] - len(lanes[lane]) :]
            lanes[lane].extend(taken)
            work[lane] += per_test * len(taken)
    return [item for lane in lanes for item in lane]
