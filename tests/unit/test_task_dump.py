"""SIGUSR1's answer: where each task of a silent instance waits."""

from __future__ import annotations

import asyncio

from watchcentre.tasks import cancel_and_wait, where_tasks_wait


async def _inner(never: asyncio.Event) -> None:
    await never.wait()


async def _outer(never: asyncio.Event) -> None:
    await _inner(never)


async def test_a_stuck_task_is_shown_down_to_the_await_it_is_stuck_in() -> None:
    never = asyncio.Event()
    task = asyncio.create_task(_outer(never), name="stuck-handler")
    await asyncio.sleep(0)  # it runs up to its await
    try:
        [chain] = [chain for name, chain in where_tasks_wait() if name == "stuck-handler"]
        functions = [where.split(" ")[-1] for where in chain]
        assert functions[:3] == ["_outer", "_inner", "wait"]
        assert chain[0].startswith("unit/test_task_dump.py:")
    finally:
        await cancel_and_wait(task)
