"""Who is watching: room-wide viewer counts, kept apart from the broker.

Each API process reports how many connections it holds per room; the room-wide count is
the sum over live processes. The Redis implementation
(:class:`livecommerce.rooms.redis_broker.RedisPresence`) gives every key a TTL, so a process
that dies stops counting within ``PRESENCE_TTL_S`` without anyone cleaning up after it.
"""

from __future__ import annotations

from typing import Protocol

PRESENCE_TTL_S = 30  # a process's report expires unless refreshed (the hub refreshes every 10 s)


class Presence(Protocol):
    async def report(self, room: str, local_count: int) -> None:
        """This process now holds ``local_count`` connections in ``room`` (0 = none)."""
        ...

    async def count(self, room: str) -> int:
        """Connections in ``room`` across all live processes."""
        ...

    async def close(self) -> None: ...


class MemoryPresence:
    """The embedded default: one process, so the room-wide count is the local one."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    async def report(self, room: str, local_count: int) -> None:
        if local_count > 0:
            self._counts[room] = local_count
        else:
            self._counts.pop(room, None)

    async def count(self, room: str) -> int:
        return self._counts.get(room, 0)

    async def close(self) -> None:
        self._counts.clear()
