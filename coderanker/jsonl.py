"""JSON Lines I/O with errors that name the file, the line and the field."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


class RecordError(ValueError):
    """One bad record: where it is and what is wrong with it."""

    def __init__(self, path: str | os.PathLike, line: int, field: str, why: str):
        self.path, self.line, self.field, self.why = str(path), line, field, why
        super().__init__(f"{self.path}:{line}: {field}: {why}")


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, dict | RecordError]]:
    """Yield (line number, record) per non-blank line; a bad line yields a RecordError."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield number, RecordError(path, number, "<line>", f"invalid UTF-8 at byte {err.start}")
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                yield number, RecordError(path, number, "<line>", f"invalid JSON: {err.msg}")
                continue
            if not isinstance(record, dict):
                yield number, RecordError(path, number, "<line>", "a record must be a JSON object")
                continue
            yield number, record


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read every record; the first bad line raises RecordError."""
    records = []
    for _, item in iter_lines(path):
        if isinstance(item, RecordError):
            raise item
        records.append(item)
    return records


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records atomically (temp file + rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
