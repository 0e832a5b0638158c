"""Errors are logged once per burst, the rest counted and summarised."""

from __future__ import annotations

import logging

import pytest

from gcache._burst_log import BurstLogger


def test_one_line_per_kind_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = BurstLogger(logging.getLogger("gcache.test"), interval=10, timer=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="gcache.test"):
        assert log.error("redis", "down")
        assert not any(log.error("redis", "down") for _ in range(99))
        assert log.error("decode", "bad bytes")  # another kind has its own window
        now[0] = 11
        assert log.error("redis", "still down")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "down",
        "bad bytes",
        "still down (99 similar errors suppressed in the last burst)",
    ]
