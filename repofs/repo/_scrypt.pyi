"""Types of the C extension behind repofs.repo.scrypt (see _scrypt.c)."""

SIMD: str
PATHS: tuple[str, ...]

def romix(lane: bytes | bytearray | memoryview, n: int, r: int, /) -> bytes: ...
def romix_on(path: str, lane: bytes | bytearray | memoryview, n: int, r: int, /) -> bytes: ...
