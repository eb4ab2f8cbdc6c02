"""Stream the elements of a (gzip-compressed) JSON array or object without loading the whole file.

A candidate pool is one large JSON document (``[{...}, {...}, ...]`` or ``{"id": {...}, ...}``). ``json.load``
would hold every structure in memory at once; :func:`iter_json_items` reads the text in blocks and decodes one
element at a time with :meth:`json.JSONDecoder.raw_decode`, so memory stays bounded by one block plus one element.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

BLOCK_CHARS = 1 << 16
#: One element larger than this is refused (a 500-site structure is ~0.3 MB of JSON; a hostile file could hold one
#: endless value, or a small gzip file could expand to one).
MAX_VALUE_CHARS = 50_000_000


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open ``path`` for reading text, transparently decompressing ``*.gz``."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


class _Reader:
    """A growable text buffer over a file handle with a read position."""

    def __init__(self, handle: IO[str], block: int) -> None:
        self.handle, self.block = handle, block
        self.buf, self.pos, self.eof = "", 0, False

    def more(self, size: int | None = None) -> bool:
        """Append one block (``size`` characters); drop the consumed prefix. Returns False at end of file."""
        if self.eof:
            return False
        chunk = self.handle.read(size or self.block)
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """Next non-whitespace character ('' at end of file), without consuming it."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def expect(self, chars: str, what: str) -> str:
        c = self.peek()
        if c == "" or c not in chars:
            found = repr(c) if c else "end of file"
            raise ValueError(f"malformed JSON: expected {what}, found {found}")
        self.pos += 1
        return c

    def value(self, decoder: json.JSONDecoder, limit: int = MAX_VALUE_CHARS) -> Any:
        """Decode one complete JSON value, reading blocks of doubling size until it is complete (so a value of n
        characters costs O(n), not O(n²) retries); a value longer than ``limit`` characters is refused."""
        self.peek()
        size = self.block
        while True:
            try:
                # Numbers and literals at the end of the buffer could decode truncated: require a delimiter after.
                obj, end = decoder.raw_decode(self.buf, self.pos)
                if end >= len(self.buf) and not self.eof and self.buf[self.pos] not in '{["':
                    raise json.JSONDecodeError("value may continue", self.buf, end)
            except json.JSONDecodeError:
                if len(self.buf) - self.pos > limit:
                    raise ValueError(
                        f"one element is longer than {limit:,} characters: not a structure record"
                    ) from None
                if not self.more(size):
                    raise ValueError("malformed JSON: truncated or invalid value near the end of the file") from None
                size *= 2
                continue
            self.pos = end
            return obj


def iter_json_items(path: str | os.PathLike, block: int = BLOCK_CHARS) -> Iterator[tuple[str | int, Any]]:
    """Yield ``(index, element)`` of a top-level JSON array, or ``(key, value)`` of a top-level JSON object.

    Raises ``ValueError`` naming the file, the element and the problem if the document is not an array/object, is
    malformed, is not UTF-8, is a truncated or corrupt gzip archive, or holds an element nested too deeply or a
    number too long to convert.
    """
    done = 0
    try:
        for item in _items(path, block):
            yield item
            done += 1
    except RecursionError as exc:
        raise ValueError(f"{Path(path).name}: element {done}: nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{Path(path).name}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    except ValueError as exc:  # malformed JSON, a 5,000-digit integer, an element too long
        raise ValueError(f"{Path(path).name}: element {done}: {exc}"[:400]) from exc
    except (EOFError, OSError, zlib.error) as exc:  # a truncated or corrupt gzip archive, met after its first block
        raise ValueError(f"{Path(path).name}: element {done}: not a readable JSON(.gz) file ({exc})"[:400]) from exc


def _items(path: str | os.PathLike, block: int) -> Iterator[tuple[str | int, Any]]:
    decoder = json.JSONDecoder()
    with open_text(path) as handle:
        reader = _Reader(handle, block)
        opening = reader.expect("[{", "a JSON array '[' or object '{' at the top level")
        closing = "]" if opening == "[" else "}"
        index = 0
        if reader.peek() == closing:
            return
        while True:
            if opening == "{":
                key = reader.value(decoder)
                if not isinstance(key, str):
                    raise ValueError("malformed JSON: object key is not a string")
                reader.expect(":", "':' after an object key")
                yield key, reader.value(decoder)
            else:
                yield index, reader.value(decoder)
            index += 1
            if reader.expect("," + closing, f"',' or {closing!r}") == closing:
                return
