"""A node that may still be in the making: the archiver's stand-in for a file or folder
while its content or tree is being saved."""

from __future__ import annotations

import trio

from ..model.tree import Node


class FutureNode:
    """Becomes a Node, or None when the item turned out unsaveable (the error is reported
    where it happened). Errors that end the backup travel through the nursery instead."""

    __slots__ = ("_node", "_event")

    def __init__(self) -> None:
        self._node: Node | None = None
        self._event: trio.Event | None = trio.Event()

    @classmethod
    def ready(cls, node: Node | None) -> FutureNode:
        fut = cls.__new__(cls)
        fut._node = node
        fut._event = None
        return fut

    def set(self, node: Node | None) -> None:
        if self._event is None or self._event.is_set():
            raise RuntimeError("FutureNode completed twice")
        self._node = node
        self._event.set()

    async def get(self) -> Node | None:
        if self._event is not None:
            await self._event.wait()
        return self._node
