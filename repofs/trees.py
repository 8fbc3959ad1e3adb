"""Tree access: decoded trees by id through the blob cache, and path resolution."""

from __future__ import annotations

from .cache.blobcache import BlobCache
from .errors import NotFound
from .model.tree import Node, decode_tree
from .repo.index import BlobType
from .repo.protocols import BlobLoader

DEFAULT_CACHE = 64 << 20


class TreeLoader:
    """Loads tree blobs once (single flight, byte-bounded LRU) and decodes them."""

    def __init__(self, loader: BlobLoader, cache: BlobCache | None = None) -> None:
        self.loader = loader
        self.cache = cache if cache is not None else BlobCache(DEFAULT_CACHE)

    async def raw(self, tree_id: bytes) -> bytes:
        key = (BlobType.TREE, tree_id)
        return await self.cache.get(key, lambda: self.loader.load_blob(BlobType.TREE, tree_id))

    async def load(self, tree_id: bytes) -> list[Node]:
        return decode_tree(await self.raw(tree_id))

    async def resolve(self, tree_id: bytes, path: str) -> Node | None:
        """The node at ``path`` (slash separated, relative to the tree); None for the root."""
        node: Node | None = None
        current = tree_id
        parts = [p for p in path.split("/") if p and p != "."]
        for i, part in enumerate(parts):
            if current is None:
                raise NotFound(f"{'/'.join(parts[:i])}: not a directory")
            want = part.encode("utf-8", "surrogateescape")
            node = next((n for n in await self.load(current) if n.name == want), None)
            if node is None:
                raise NotFound(f"{'/'.join(parts[:i + 1])}: no such file or directory in the snapshot")
            current = node.subtree  # type: ignore[assignment]
        return node

    async def subtree(self, tree_id: bytes, path: str) -> bytes:
        """The tree id of the folder at ``path`` below ``tree_id`` (itself for an empty path)."""
        node = await self.resolve(tree_id, path)
        if node is None:
            return tree_id
        if node.subtree is None:
            raise NotFound(f"{path}: not a directory in the snapshot")
        return node.subtree
