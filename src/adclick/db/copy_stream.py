"""A COPY ... TO STDOUT read as a file, so pyarrow parses it in C++ as it streams."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv


class CopyStream(io.RawIOBase):
    """The blocks of a psycopg COPY as a readable file."""

    def __init__(self, blocks: Iterator[Any]) -> None:
        self._blocks = blocks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._pending = bytes(block)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def csv_reader(copy: Any, columns: dict[str, pa.DataType]) -> pacsv.CSVStreamingReader:
    """Batches of a ``COPY (...) TO STDOUT (FORMAT CSV)`` with the given column types.

    NOT NULL columns only: an empty field is an empty string, never a null.
    """
    return pacsv.open_csv(
        io.BufferedReader(CopyStream(iter(copy)), buffer_size=1 << 20),
        read_options=pacsv.ReadOptions(
            column_names=list(columns),
            block_size=16 << 20,
            use_threads=False,  # the COPY is read on this thread's connection
        ),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=columns, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )
