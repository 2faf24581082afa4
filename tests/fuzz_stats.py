"""How many examples of each hypothesis fuzz test reach its oracle comparison -- counted, and checked.

A fuzz test compares a kernel with an oracle, or expects a ValueError on an input the kernel must reject. If
its strategy draws mostly invalid inputs, the test passes while the comparison it exists for rarely runs. So
the shared helpers of tests/test_fuzz.py record, for each example, each call's outcome:

- ``assert_oracle_or_value_error`` and ``result_or_value_error`` (a call site that compares with an oracle):
  ``oracle`` (the kernel answered, and the answer is compared with the oracle's) or ``rejected`` (the
  ValueError that the input allowed);
- ``assert_value_error`` (an input that must be rejected): ``value_error``.

A test without those helpers records its branches itself with ``record("oracle", site)`` and
``record("rejected", site)``.

``@counted()`` (put it above ``@fuzz(...)`` / ``@FUZZ``) runs the hypothesis test and then fails it unless

- at least ``min_oracle`` (80 %) of its examples reached an oracle comparison,
- every call site that compares with an oracle (one kernel and its oracle) reached the oracle in at least
  ``min_oracle`` of the examples that ran it (a test that checks two kernels must reach both), and
- at least one example tested the ValueError path (``rejected`` or ``value_error``), unless ``rejects=False``
  (a kernel without invalid inputs).

Hypothesis does not draw i.i.d. examples (it repeats and mutates earlier choices), so a rare "invalid" branch
of a strategy can still take a third of a short run: a test reaches its oracle reliably when each example
draws a valid input for the oracle and, besides it, an invalid variant for the ValueError path.

Examples that hypothesis discards (``assume``, a filter, too much data) are not counted. A fuzz test that calls
the helpers without ``@counted`` fails (see ``record``), so a new test cannot skip the count.

``FUZZ_STATS=path`` appends one JSON line per counted test (name, examples, oracle, rejected, per site) to path.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field

from hypothesis.control import currently_in_test_context

MIN_ORACLE = 0.8
OUTCOMES = ("oracle", "rejected", "value_error")


@dataclass
class Stats:
    """The counts of one run of one test: completed examples, those that reached an oracle (at any call site) and
    those that had a rejection; per call site, the examples that ran it and those in which it reached the oracle."""

    examples: int = 0
    oracle: int = 0
    rejected: int = 0
    site_runs: Counter = field(default_factory=Counter)
    site_oracle: Counter = field(default_factory=Counter)

    def add(self, example: dict[str, set[str]]) -> None:
        self.examples += 1
        self.oracle += any("oracle" in o for o in example.values())
        self.rejected += any(o & {"rejected", "value_error"} for o in example.values())
        for site, outcomes in example.items():
            if outcomes != {"value_error"}:
                self.site_runs[site] += 1
                self.site_oracle[site] += "oracle" in outcomes

    def summary(self) -> str:
        sites = ", ".join(f"{s}: {self.site_oracle[s]}/{n}" for s, n in sorted(self.site_runs.items()))
        return (f"{self.oracle}/{self.examples} examples reached the oracle, {self.rejected} tested a ValueError "
                f"({sites})")


_example: dict[str, set[str]] | None = None     # site -> outcomes, in the running example of a counted test


def record(outcome: str, site: str | None = None, depth: int = 1) -> None:
    """Record ``outcome`` ("oracle", "rejected" or "value_error") of one kernel call in the running example.
    ``site`` names the comparison; by default the line that called the function that called ``record``
    (``depth`` frames up)."""
    assert outcome in OUTCOMES, outcome
    if _example is None:
        if outcome != "value_error" and currently_in_test_context():
            raise AssertionError("a hypothesis test that compares with an oracle must be @counted() "
                                 "(tests/fuzz_stats.py), so that its strategy is checked to reach the oracle")
        return                                   # a plain test (pinned examples): nothing to count
    if site is None:
        frame = sys._getframe(depth + 1)
        site = f"{frame.f_code.co_name}:{frame.f_lineno}"
    _example.setdefault(site, set()).add(outcome)


def counted(min_oracle: float = MIN_ORACLE, rejects: bool = True):
    """Decorator for a hypothesis test (above its settings and @given): count its examples' outcomes and fail the
    test when too few reached the oracle, or (``rejects``) when none was rejected."""

    def decorate(test):
        assert getattr(test, "is_hypothesis_test", False), "put @counted() above @given and the settings"
        inner = test.hypothesis.inner_test
        stats = Stats()

        @functools.wraps(inner)
        def counted_example(*args, **kwargs):
            global _example
            previous, _example = _example, {}
            try:
                inner(*args, **kwargs)
                example = _example
            finally:
                _example = previous
            stats.add(example)                   # only examples that ran to the end (no assume, no failure)

        test.hypothesis.inner_test = counted_example

        @functools.wraps(test)
        def run(*args, **kwargs):
            stats.__init__()
            test(*args, **kwargs)
            report(test.__name__, stats)
            check(test.__name__, stats, min_oracle, rejects)

        return run

    return decorate


def check(name: str, stats: Stats, min_oracle: float = MIN_ORACLE, rejects: bool = True) -> None:
    """Fail unless enough of the examples (and of each site's runs) reached the oracle, and some were rejected."""
    assert stats.examples, f"{name}: no example ran to the end"
    problems = []
    if stats.oracle < min_oracle * stats.examples:
        problems.append(f"only {stats.oracle} of {stats.examples} examples reached an oracle comparison "
                        f"(at least {min_oracle:.0%} must): the strategy draws too many invalid inputs")
    for site, runs in sorted(stats.site_runs.items()):
        if stats.site_oracle[site] < min_oracle * runs:
            problems.append(f"the comparison at {site} reached its oracle in only {stats.site_oracle[site]} of the "
                            f"{runs} examples that ran it (at least {min_oracle:.0%} must)")
    if rejects and not stats.rejected:
        problems.append("no example tested an input to reject: the ValueError path is no longer tested")
    assert not problems, f"{name}: " + "; ".join(problems) + f". Counts: {stats.summary()}"


def report(name: str, stats: Stats) -> None:
    path = os.environ.get("FUZZ_STATS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": name, "examples": stats.examples, "oracle": stats.oracle,
                                "rejected": stats.rejected, "sites": {s: [stats.site_oracle[s], n]
                                                                      for s, n in stats.site_runs.items()}}) + "\n")
