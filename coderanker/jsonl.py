"""JSON Lines I/O with errors that name the file, the line and the field."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from coderanker.errors import InputError


class RecordError(InputError):
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


class JsonlGroups:
    """A JSONL file's records grouped by the value of one field, read one group at a time.

    One pass notes where each group's lines are, so a group need not be consecutive in the
    file and the file is never held in memory. Groups come in order of first appearance,
    records in file order; records for which `keep` is false are left out (a group with none
    is no group). Bad lines raise RecordError, as in `read_jsonl`."""

    def __init__(self, path: str | os.PathLike, field: str = "name", keep: Callable[[dict], bool] | None = None):
        self.path, self.field = Path(path), field
        self._lines: dict[str, list[tuple[int, int]]] = {}  # group -> [(line number, byte offset)]
        offset = 0
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                record = _parse_line(self.path, number, raw)
                if not isinstance(record.get(field), str):
                    raise RecordError(self.path, number, field, "missing required field" if field not in record
                                      else f"expected str, got {type(record[field]).__name__}")
                if keep is None or keep(record):
                    self._lines.setdefault(record[field], []).append((number, start))

    @property
    def keys(self) -> list[str]:
        return list(self._lines)

    def line_numbers(self, key: str) -> list[int]:
        return [number for number, _ in self._lines[key]]

    def read(self, key: str) -> list[dict]:
        """The group's records, in file order."""
        with open(self.path, "rb") as handle:
            records = []
            for number, offset in self._lines[key]:
                handle.seek(offset)
                records.append(_parse_line(self.path, number, handle.readline()))
        return records

    def batches(self, max_records: int, keys: Iterable[str] | None = None) -> Iterator[list[str]]:
        """`keys` (default: all groups) in runs of whole groups of at most `max_records` records
        between them; a bigger group is a run alone."""
        batch, size = [], 0
        for key in self.keys if keys is None else keys:
            count = len(self._lines[key])
            if batch and size + count > max_records:
                yield batch
                batch, size = [], 0
            batch.append(key)
            size += count
        if batch:
            yield batch


def _parse_line(path: Path, number: int, raw: bytes) -> dict:
    """One line's record (the checks of `iter_lines`); a bad line raises RecordError."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise RecordError(path, number, "<line>", f"invalid UTF-8 at byte {err.start}") from None
    except json.JSONDecodeError as err:
        raise RecordError(path, number, "<line>", f"invalid JSON: {err.msg}") from None
    if not isinstance(record, dict):
        raise RecordError(path, number, "<line>", "a record must be a JSON object")
    return record


@contextlib.contextmanager
def jsonl_writer(path: str | os.PathLike) -> Iterator[Callable[[dict], None]]:
    """Yield a function that appends one record, as write_jsonl writes it, to a temporary
    file beside `path`; the file replaces `path` when the block ends without an error, and
    is removed when it does not, so a crash never leaves half a file at `path`. A write
    that fails (a full disk) raises an OSError that names `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _cannot_write(path, err) from err
    handle = os.fdopen(fd, "w", encoding="utf-8")

    def write(record: dict) -> None:
        try:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as err:
            raise _cannot_write(path, err) from err

    try:
        yield write
        try:
            handle.close()  # the last buffered records are written here
            os.replace(tmp, path)
        except OSError as err:
            raise _cannot_write(path, err) from err
    except BaseException:
        with contextlib.suppress(OSError):
            handle.close()
        Path(tmp).unlink(missing_ok=True)
        raise


def _cannot_write(path: Path, err: OSError) -> OSError:
    # A failed write() names no file ("[Errno 28] No space left on device"): say which.
    return OSError(err.errno, f"cannot write {path}: {err.strerror or err}")
