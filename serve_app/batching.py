"""Gathers concurrent single requests into batches sized by the backlog.

`serve.batch` closes each batch after its wait and then queues it for a free
slot, so under load it runs a line of small batches, one after another, and
requests wait behind all of them. Here a batch is only closed when a slot is
free: whatever arrived while the slots were busy goes out together, so batches
grow with the load and each tool call carries more of it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchHandler = Callable[[list[T]], Awaitable[Sequence[R]]]


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class MicroBatcher(Generic[T, R]):
    """Calls `handler` with batches of the items submitted concurrently.

    Args:
        handler: Decides a batch; returns one result per item, in order.
        max_batch_size: Most items in one call.
        wait_s: How long a batch stays open for company once a slot is free
            and fewer than `max_batch_size` items wait.
        max_concurrent: Batches running at once.
        on_batch: Told each batch's size as it starts (metrics).
    """

    def __init__(
        self,
        handler: BatchHandler[T, R],
        max_batch_size: int,
        wait_s: float,
        max_concurrent: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1 or max_concurrent < 1 or wait_s < 0:
            raise ValueError(
                "max_batch_size and max_concurrent must be at least 1 and wait_s "
                f"not negative; got {max_batch_size}, {max_concurrent}, {wait_s}"
            )
        self._handler = handler
        self._max_batch_size = max_batch_size
        self._wait_s = wait_s
        self._max_concurrent = max_concurrent
        self._on_batch = on_batch
        self._waiting: deque[_Waiting[T, R]] = deque()
        self._arrived: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    @property
    def backlog(self) -> int:
        """Items waiting for a batch."""
        return len(self._waiting)

    async def submit(self, item: T) -> R:
        """Queues one item and returns its result once its batch is decided."""
        if self._dispatcher is None or self._dispatcher.done():
            # Started on first use, on the loop that serves requests.
            self._arrived = asyncio.Event()
            self._dispatcher = asyncio.create_task(self._dispatch())
        assert self._arrived is not None
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(item, future))
        self._arrived.set()
        return await future

    async def _dispatch(self) -> None:
        assert self._arrived is not None
        slots = asyncio.Semaphore(self._max_concurrent)
        while True:
            await slots.acquire()
            await self._arrived.wait()
            if len(self._waiting) < self._max_batch_size and self._wait_s > 0:
                await asyncio.sleep(self._wait_s)
            batch: list[_Waiting[T, R]] = []
            while self._waiting and len(batch) < self._max_batch_size:
                waiting = self._waiting.popleft()
                # A caller that went away before its batch formed (a client that
                # timed out in an overload) is not decided: nothing is written
                # for it and the slot goes to one still waiting.
                if not waiting.future.done():
                    batch.append(waiting)
            if not self._waiting:
                self._arrived.clear()
            if not batch:
                slots.release()
                continue
            task = asyncio.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _task: slots.release())

    async def _run(self, batch: list[_Waiting[T, R]]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(batch))
        try:
            results = await self._handler([waiting.item for waiting in batch])
            if len(results) != len(batch):
                raise RuntimeError(
                    f"batch handler returned {len(results)} results for {len(batch)} items"
                )
        except Exception as error:
            # Each caller gets the error; the agent has logged it where it arose.
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
            return
        for waiting, result in zip(batch, results, strict=True):
            # A caller that went away (client disconnect) has a cancelled future;
            # its item was still decided and recorded.
            if not waiting.future.done():
                waiting.future.set_result(result)
