"""Compiled artefacts by content hash: a program compiled once is never compiled again,
in this run or a later one. One directory per key, written atomically."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from coderanker.languages import Language


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "coderanker" / "compiled"


class CompileCache:
    """Maps (language, compile command, compiler, source) to the compiler's output files."""

    def __init__(self, root: str | os.PathLike = ""):
        self.root = Path(root) if root else default_cache_dir()

    def key(self, language: Language, source: str, toolchain: tuple[str, ...] = ()) -> str:
        """`toolchain`: files besides the compiler whose change invalidates (TypeScript's tsc)."""
        compiler = shutil.which(language.compile[0]) or language.compile[0]
        stamps = []
        for path in (compiler, *toolchain):  # a new toolchain invalidates
            try:
                stamps.append(os.stat(os.path.realpath(path)).st_mtime_ns)
            except OSError:
                stamps.append(0)
        ident = json.dumps([language.code, list(language.compile), compiler, stamps, source])
        return hashlib.sha256(ident.encode()).hexdigest()

    def get(self, key: str) -> dict[str, str] | None:
        """The artefacts (name -> base64 content), or None when not cached."""
        folder = self.root / key[:2] / key
        try:
            return {path.name: base64.b64encode(path.read_bytes()).decode() for path in folder.iterdir()}
        except OSError:
            return None

    def put(self, key: str, files: dict[str, str]) -> None:
        folder = self.root / key[:2] / key
        if folder.exists():
            return
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".new-"))
        for name, data in files.items():
            (staging / os.path.basename(name)).write_bytes(base64.b64decode(data))
        try:
            staging.rename(folder)
        except OSError:  # another process cached it first
            shutil.rmtree(staging, ignore_errors=True)
