"""The config provider's answer for sync callers (gcache._sync_provider): each thread's driver
runs an ``async def`` provider without an event loop, and whatever the provider does (return
None, raise, re-enter, suspend) every call still gets its own answer.

No Redis here: the provider and the background loop are all there is.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from bus._portal import BackgroundLoop
from gcache._sync_provider import SyncProvider


class Boom(Exception):
    pass


@pytest.fixture
def background() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop("test-sync-provider")
    yield loop
    loop.stop()


def test_plain_and_async_answers_without_a_loop(background: BackgroundLoop) -> None:
    async def async_provider(key: str) -> str:
        return "async:" + key

    def plain_provider(key: str) -> str:
        return "plain:" + key

    answer = SyncProvider(async_provider, background).answer
    assert [answer("a"), answer("b"), answer("a")] == ["async:a", "async:b", "async:a"]
    assert SyncProvider(plain_provider, background).answer("a") == "plain:a"
    assert background.thread is None  # nothing needed a loop


def test_a_none_answer_is_an_answer(background: BackgroundLoop) -> None:
    """None ("no config") must not be mistaken for a bare yield still under way."""

    async def provider(key: str) -> None:
        return None

    answer = SyncProvider(provider, background).answer
    assert [answer("a"), answer("b")] == [None, None]


def test_a_provider_that_raised_does_not_break_the_next_calls(background: BackgroundLoop) -> None:
    failing = {"b"}

    async def provider(key: str) -> str:
        if key in failing:
            raise Boom(key)
        return key

    answer = SyncProvider(provider, background).answer
    assert answer("a") == "a"
    with pytest.raises(Boom):
        answer("b")
    assert [answer("a"), answer("c")] == ["a", "c"]  # the thread's driver was replaced


def test_re_entered_from_inside_the_provider(background: BackgroundLoop) -> None:
    """A provider that itself needs an answer (here: from the same SyncProvider, as a provider
    calling a sync cached function would) must not find its own thread's driver busy."""
    calls: list[str] = []

    async def provider(key: str) -> str:
        calls.append(key)
        if key.startswith("outer:"):
            return "wraps " + answer(key.removeprefix("outer:"))
        return key

    answer = SyncProvider(provider, background).answer
    assert answer("outer:x") == "wraps x"
    assert answer("y") == "y"  # and the thread's driver still works afterwards
    assert calls == ["outer:x", "x", "y"]


def test_bare_yields_are_stepped_through(background: BackgroundLoop) -> None:
    started: list[str] = []

    async def provider(key: str) -> str:
        started.append(key)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return key

    answer = SyncProvider(provider, background).answer
    assert [answer("a"), answer("b")] == ["a", "b"]
    assert started == ["a", "b"]  # each ran once
    assert background.thread is None


class _Suspend:
    """Yields something other than None when no loop runs (as a foreign future would)."""

    def __await__(self) -> Generator[Any, None, None]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            yield "a future of some loop"


def test_suspended_on_something_else_is_asked_again_on_the_background_loop(
    background: BackgroundLoop,
) -> None:
    started: list[str] = []

    async def provider(key: str) -> str:
        started.append(key)
        await _Suspend()
        return "answered on " + threading.current_thread().name

    answer = SyncProvider(provider, background).answer
    assert answer("a") == "answered on test-sync-provider"
    assert started == ["a", "a"]  # documented: code before the suspension runs twice
    assert answer("b") == "answered on test-sync-provider"  # a new driver after the abort


def test_needing_a_running_loop_is_asked_again_on_the_background_loop(
    background: BackgroundLoop,
) -> None:
    async def provider(key: str) -> str:
        await asyncio.sleep(0.001)  # needs a running loop
        return key

    answer = SyncProvider(provider, background).answer
    assert [answer("a"), answer("b")] == ["a", "b"]
    assert background.thread is not None


def test_each_thread_gets_its_own_answers(background: BackgroundLoop) -> None:
    async def provider(key: str) -> str:
        await asyncio.sleep(0)  # a thread switch may land mid-call
        return key

    answer = SyncProvider(provider, background).answer
    threads, per_thread = 8, 2_000
    start = threading.Barrier(threads)
    wrong: list[tuple[str, str]] = []

    def ask(name: str) -> None:
        start.wait()
        for n in range(per_thread):
            key = f"{name}-{n}"
            got = answer(key)
            if got != key:
                wrong.append((key, got))

    workers = [threading.Thread(target=ask, args=(f"t{i}",)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert wrong == []
