"""Hypothesis profiles of the suite, and the settings of the fuzz tests.

Two profiles, chosen with the ``HYPOTHESIS_PROFILE`` environment variable (``tests/conftest.py``
loads it before any test module is imported):

* ``ci`` (the default): derandomized, so a CI run is reproducible, no example database, no
  deadline (the machine may be busy); fuzz tests run their small ``ci_examples`` budget.
* ``nightly``: random, every fuzz test runs :data:`NIGHTLY_EXAMPLES` cases, so the ``fuzz``
  marked tests together run well over 100 000 (README, Development)::

      HYPOTHESIS_PROFILE=nightly .venv/bin/pytest -m fuzz --hypothesis-show-statistics
"""

from __future__ import annotations

import collections
import os

from hypothesis import HealthCheck, settings

__all__ = ["CASES", "NIGHTLY_EXAMPLES", "PROFILE_ENV", "fuzz_settings", "load_profile"]

PROFILE_ENV = "HYPOTHESIS_PROFILE"
NIGHTLY_EXAMPLES = 25_000
CASES: collections.Counter[str] = collections.Counter()
"""Cases each fuzz test ran (it counts its own); ``tests/conftest.py`` prints the total."""
_QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]

settings.register_profile(
    "ci", deadline=None, derandomize=True, database=None, suppress_health_check=_QUIET
)
settings.register_profile(
    "nightly", deadline=None, max_examples=NIGHTLY_EXAMPLES, suppress_health_check=_QUIET
)


def load_profile() -> str:
    """Load the profile ``HYPOTHESIS_PROFILE`` names (default ``ci``); returns its name."""
    name = os.environ.get(PROFILE_ENV, "ci")
    settings.load_profile(name)
    return name


def fuzz_settings(ci_examples: int) -> settings:
    """Settings of one fuzz test: ``ci_examples`` cases in the ``ci`` profile, the profile's own
    ``max_examples`` in any other (``nightly``)."""
    nightly = os.environ.get(PROFILE_ENV, "ci") != "ci"
    return settings(max_examples=settings.default.max_examples if nightly else ci_examples)
