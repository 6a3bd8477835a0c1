from typing import Iterator

__all__ = ["RangeNotSatisfiable", "parse_range", "FileReader", "MAX_HEADER_LENGTH", "MAX_RANGES", "INT63"]

MAX_HEADER_LENGTH: int
MAX_RANGES: int
INT63: int

class RangeNotSatisfiable(Exception):
    size: int
    def __init__(self, size: int) -> None: ...

def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None: ...

class FileReader:
    def __init__(self, fd: int, chunk_size: int = 262144) -> None: ...
    @property
    def chunk_size(self) -> int: ...
    def read(self, offset: int, length: int) -> bytes: ...
    def chunks(self, first: int, last: int) -> Iterator[bytes]: ...
