"""Types of the C extension behind repofs.model.tree (see _treecodec.c)."""

from collections.abc import Callable, Sequence
from typing import Any

from .gotime import Timestamp
from .tree import Node

def configure(node: type[Node], timestamp: type[Timestamp], go_zero: Timestamp,
              node_from_json: Callable[[bytes], Node], node_to_json: Callable[[Node], bytes],
              unquote: Callable[[str], bytes], quote: Callable[[bytes], str], /) -> None: ...
def decode(data: bytes | bytearray | memoryview, /) -> list[Node] | None: ...
def encode(nodes: Sequence[Node], /) -> bytes: ...
def replace(node: Node, /, **changes: Any) -> Node: ...
