"""run.json's manifest: what the run folder's tables and raw files must be, byte for byte.

The writer records each file's size and SHA-256 (and a table's row count) as it
writes it, in the same run.json it rewrites after every trial; a reader compares
the files with it (``bench.store.integrity``). Only files the writer made are
listed: charts, reports and verdict.json are rewritten from the folder by
``bench report`` and need no proof.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

TABLES_KEY = "tables"
RAW_KEY = "raw"
# Read in blocks so a large raw file (HdrHistograms, micro benchmarks) is never whole in memory.
_BLOCK = 1 << 20


def empty() -> dict[str, Any]:
    return {TABLES_KEY: {}, RAW_KEY: {}}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def table_entry(data: bytes, rows: int) -> dict[str, Any]:
    return {"rows": rows, "bytes": len(data), "sha256": sha256_bytes(data)}


def raw_entry(data: bytes, trial: bool) -> dict[str, Any]:
    """``trial``: the document is one trial's, with its table row (rebuilds the tables)."""
    return {"bytes": len(data), "sha256": sha256_bytes(data), "trial": trial}


def is_valid(manifest: object) -> bool:
    """Whether ``manifest`` has the shape this module writes (a damaged run.json may not)."""
    if not isinstance(manifest, dict):
        return False
    for key in (TABLES_KEY, RAW_KEY):
        part = manifest.get(key)
        if not isinstance(part, dict):
            return False
        for entry in part.values():
            if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
                return False
    return True


def mismatch(path: Path, entry: dict[str, Any]) -> str | None:
    """Why the file at ``path`` is not the one the manifest lists; None when it is."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != entry.get("bytes"):
        return f"{size} bytes where the manifest lists {entry.get('bytes')}"
    if sha256_file(path) != entry["sha256"]:
        return "its SHA-256 differs from the manifest's (the content changed)"
    return None
