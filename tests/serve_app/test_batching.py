"""MicroBatcher: batches sized by the backlog, results to their callers, errors to all."""

from __future__ import annotations

import asyncio

import pytest

from serve_app.batching import MicroBatcher


class SlowDoubler:
    """Doubles numbers; each call takes until `release` is set, to build a backlog."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.running = 0
        self.most_running = 0

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.release.wait()
            return [item * 2 for item in items]
        finally:
            self.running -= 1


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_what_arrives_while_the_slot_is_busy_goes_out_in_one_batch() -> None:
    handler = SlowDoubler()
    batcher: MicroBatcher[int, int] = MicroBatcher(
        handler, max_batch_size=64, wait_s=0, max_concurrent=1
    )

    first = asyncio.ensure_future(batcher.submit(1))
    await _settle()
    later = [asyncio.ensure_future(batcher.submit(n)) for n in range(2, 12)]
    await _settle()
    assert handler.batches == [[1]] and batcher.backlog == 10

    handler.release.set()
    results = await asyncio.gather(first, *later)

    assert results == [n * 2 for n in range(1, 12)]
    assert handler.batches == [[1], list(range(2, 12))]


async def test_batches_never_exceed_the_size_or_the_concurrency() -> None:
    handler = SlowDoubler()
    batcher: MicroBatcher[int, int] = MicroBatcher(
        handler, max_batch_size=4, wait_s=0, max_concurrent=2
    )

    pending = [asyncio.ensure_future(batcher.submit(n)) for n in range(10)]
    await _settle()
    assert handler.most_running == 2 and batcher.backlog == 2

    handler.release.set()
    assert await asyncio.gather(*pending) == [n * 2 for n in range(10)]
    assert [len(batch) for batch in handler.batches] == [4, 4, 2]
    assert handler.most_running == 2


async def test_a_failing_batch_fails_each_of_its_callers_and_the_next_batch_runs() -> None:
    calls = 0

    async def flaky(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("records database refused the write")
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(
        flaky, max_batch_size=8, wait_s=0.001, max_concurrent=1
    )

    failed = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert [type(error) for error in failed] == [ConnectionError, ConnectionError]
    assert await batcher.submit(3) == 3


async def test_a_handler_that_drops_results_fails_the_batch_naming_the_counts() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher: MicroBatcher[int, int] = MicroBatcher(
        short, max_batch_size=8, wait_s=0.001, max_concurrent=1
    )

    with pytest.raises(RuntimeError, match="1 results for 2 items"):
        await asyncio.gather(batcher.submit(1), batcher.submit(2))


async def test_a_caller_that_goes_away_does_not_disturb_its_batch() -> None:
    handler = SlowDoubler()
    batcher: MicroBatcher[int, int] = MicroBatcher(
        handler, max_batch_size=8, wait_s=0, max_concurrent=1
    )

    leaving = asyncio.ensure_future(batcher.submit(1))
    staying = asyncio.ensure_future(batcher.submit(2))
    await _settle()
    leaving.cancel()
    handler.release.set()

    assert await staying == 4
    assert handler.batches == [[1, 2]]


async def test_callers_gone_before_their_batch_formed_are_not_decided() -> None:
    handler = SlowDoubler()
    batcher: MicroBatcher[int, int] = MicroBatcher(
        handler, max_batch_size=8, wait_s=0, max_concurrent=1
    )
    first = asyncio.ensure_future(batcher.submit(1))
    await _settle()
    gone = [asyncio.ensure_future(batcher.submit(n)) for n in (2, 3)]
    staying = asyncio.ensure_future(batcher.submit(4))
    await _settle()
    for caller in gone:
        caller.cancel()
    handler.release.set()

    assert await asyncio.gather(first, staying) == [2, 8]
    assert handler.batches == [[1], [4]]


async def test_a_backlog_of_callers_all_gone_runs_no_batch() -> None:
    handler = SlowDoubler()
    batcher: MicroBatcher[int, int] = MicroBatcher(
        handler, max_batch_size=8, wait_s=0, max_concurrent=1
    )
    first = asyncio.ensure_future(batcher.submit(1))
    await _settle()
    gone = asyncio.ensure_future(batcher.submit(2))
    await _settle()
    gone.cancel()
    handler.release.set()
    assert await first == 2
    await _settle()

    assert await batcher.submit(5) == 10
    assert handler.batches == [[1], [5]]


async def test_batch_sizes_are_reported_as_batches_start() -> None:
    sizes: list[int] = []

    async def echo(items: list[int]) -> list[int]:
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(
        echo, max_batch_size=8, wait_s=0.01, max_concurrent=1, on_batch=sizes.append
    )

    await asyncio.gather(*(batcher.submit(n) for n in range(3)))

    assert sizes == [3]


def test_settings_that_could_never_run_a_batch_are_refused() -> None:
    async def echo(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError, match="max_concurrent must be at least 1"):
        MicroBatcher(echo, max_batch_size=8, wait_s=0, max_concurrent=0)
