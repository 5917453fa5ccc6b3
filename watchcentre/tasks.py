"""Background asyncio tasks: the one way this service stops them."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (if any) and return once it has stopped; its cancellation is not an error."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def where_tasks_wait() -> list[tuple[str, list[str]]]:
    """Each running task's name and the chain of awaits it is suspended in (outermost first, as
    `file:line function`): what an operator asks of an instance that has gone silent (SIGUSR1)."""
    out = []
    for task in asyncio.all_tasks():
        chain: list[str] = []
        awaited: Any = task.get_coro()
        while awaited is not None and len(chain) < 40:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                code = frame.f_code
                where = "/".join(code.co_filename.rsplit("/", 2)[-2:])  # e.g. service/intake.py
                chain.append(f"{where}:{frame.f_lineno} {code.co_name}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        out.append((task.get_name(), chain))
    return out
