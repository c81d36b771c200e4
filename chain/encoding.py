"""Canonical binary encoding: little-endian integers and Bitcoin's CompactSize varints.

Decoding is strict (python-bitcoinlib's habit): reading past the end, trailing
bytes and non-minimal varints are all errors (reason ``bad-encoding``), so every
object has exactly one serialization and its hash cannot be malleated.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from chain.errors import DecodeError

T = TypeVar("T")

MAX_VARINT = 0x02000000  # Bitcoin Core: MAX_SIZE, the largest count a decoder accepts

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")


class cached(Generic[T]):
    """A property computed once per (immutable) object, then read from the instance dict.

    ``functools.cached_property`` takes a lock on every first computation in Python
    3.11; on the validation hot path (txid, serialization, signature-hash parts of
    every transaction) that lock costs more than the hashing.
    """

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> T:
        if instance is None:
            return self  # type: ignore[return-value]
        value = instance.__dict__[self.name] = self.func(instance)
        return value


def varint(n: int) -> bytes:
    """Encode ``n`` as a CompactSize: 1, 3, 5 or 9 bytes, always the shortest form."""
    if n < 0:
        raise ValueError(f"varint of negative number {n}")
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + _U16.pack(n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + _U32.pack(n)
    return b"\xff" + _U64.pack(n)


def u32(n: int) -> bytes:
    return _U32.pack(n)


def i64(n: int) -> bytes:
    return _I64.pack(n)


class Reader:
    """Read fields one after another from a byte string, refusing to read past its end."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def read(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise DecodeError(f"truncated: wanted {n} bytes at offset {self.pos}, {self.remaining()} left")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u32(self) -> int:
        (value,) = _U32.unpack(self.read(4))
        return value

    def i64(self) -> int:
        (value,) = _I64.unpack(self.read(8))
        return value

    def varint(self) -> int:
        """Read a CompactSize, rejecting non-minimal encodings and values above MAX_VARINT."""
        first = self.read(1)[0]
        if first < 0xFD:
            return first
        if first == 0xFD:
            (value,) = _U16.unpack(self.read(2))
            minimum = 0xFD
        elif first == 0xFE:
            value = _U32.unpack(self.read(4))[0]
            minimum = 0x10000
        else:
            value = _U64.unpack(self.read(8))[0]
            minimum = 0x100000000
        if value < minimum:
            raise DecodeError(f"non-canonical varint {value} at offset {self.pos}")
        if value > MAX_VARINT:
            raise DecodeError(f"varint {value} exceeds the maximum {MAX_VARINT}")
        return value

    def count(self, item_size: int) -> int:
        """Read a list length, refusing one that could not fit in the bytes left (no huge allocations)."""
        n = self.varint()
        if n * item_size > self.remaining():
            raise DecodeError(
                f"truncated: {n} items of at least {item_size} bytes need more than the {self.remaining()} left"
            )
        return n

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise DecodeError(f"trailing data: {self.remaining()} bytes after the end of the object")
