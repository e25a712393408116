"""Reading text files line by line with errors that name the file and the line."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterator

from .errors import InputError


def numbered_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its line break) of a UTF-8 file, gzipped when its name ends in .gz
    (committed runs are); bytes that are not UTF-8 are an error naming the line (Python's own decoder
    names only a byte offset). A byte-order mark that starts the file (Windows editors write one) is
    dropped: it would otherwise be part of the first id. Lines end at "\\n" only (``str.splitlines``
    would split at U+2028 inside a JSON string too)."""
    line_no = 0
    try:
        with (gzip.open if str(path).endswith(".gz") else open)(path, "rb") as f:
            for line_no, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    raise InputError(f"not UTF-8 text (byte {e.start + 1} of the line)", path, line_no,
                                     hint="convert the file to UTF-8") from None
                yield line_no, line.rstrip("\r\n")
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise InputError(f"not a complete gzip file ({e})", path, line_no + 1 if line_no else None,
                         hint="download or compress it again") from None
