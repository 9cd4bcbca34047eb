"""The run store: find run folders and load them back (``bench.store.writer`` writes them).

A run folder alone is enough to redraw every chart and rewrite every report. The
loader checks the tables against run.json's manifest and rebuilds damaged ones
from ``raw/`` (``bench.store.integrity``), and refuses a ``schema_version`` it
does not know instead of guessing (asv and pytest-benchmark do the same). Names
and columns come from ``bench.store.schema``.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.store import manifest, schema
from bench.store.files import (
    atomic_write_bytes,
    atomic_write_json,
    coerce_table,
    empty_table,
    read_json_or_none,
    schema_table,
)
from bench.store.integrity import FolderCheck, RunFolderError, RunIntegrityError
from bench.store.liveness import RunState, run_state, writer_alive
from bench.store.writer import RunWriteError, RunWriter, create_run, new_run_id

# The writer's and the files' names are re-exported: callers import the store from here.
__all__ = [
    "RunData",
    "RunFolderError",
    "RunIntegrityError",
    "RunWriteError",
    "RunWriter",
    "atomic_write_bytes",
    "atomic_write_json",
    "coerce_table",
    "create_run",
    "empty_table",
    "load",
    "new_run_id",
    "resolve_run_path",
    "schema_table",
]


class RunNotFoundError(LookupError):
    """The requested run does not exist; the message lists the runs that do."""


class UnknownSchemaVersionError(ValueError):
    """run.json carries a schema_version this version of bench cannot read."""


@dataclass(frozen=True)
class RunData:
    """One run as read back from its folder: everything charts, verdict and report need."""

    path: Path
    meta: dict[str, Any]
    trials: pd.DataFrame
    micro: pd.DataFrame
    verdict: dict[str, Any] | None = field(default=None)
    # What reading it had to repair (tables rebuilt from raw/, a verdict.json ignored).
    notes: tuple[str, ...] = ()

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", self.path.name))

    @property
    def state(self) -> RunState:
        """Its status as of now: "interrupted" when run.json says running but its writer died."""
        return run_state(self.meta, self.trials, self.path)

    @property
    def charts_dir(self) -> Path:
        return self.path / schema.CHARTS_DIR


def available_runs(results_dir: str | Path | None = None) -> list[Path]:
    """Run folders (those holding run.json) under ``results_dir``, oldest first."""
    root = Path(results_dir) if results_dir is not None else schema.default_results_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / schema.RUN_JSON).is_file())


def _not_found(what: str, root: Path) -> RunNotFoundError:
    runs = available_runs(root)
    listing = ", ".join(p.name for p in runs[-10:]) if runs else "none"
    more = f" (last 10 of {len(runs)})" if len(runs) > 10 else ""
    return RunNotFoundError(
        f"no run {what!r}: no folder with {schema.RUN_JSON} there or under {root}. "
        f"Available runs{more}: {listing}. Pass a run folder path, a run id, or 'latest'; "
        "make one with `python -m bench run`."
    )


def resolve_run_path(path_or_latest: str | Path, results_dir: str | Path | None = None) -> Path:
    """Turn 'latest', a run id, or a folder path into a run folder path."""
    root = Path(results_dir) if results_dir is not None else schema.default_results_dir()
    if str(path_or_latest) == "latest":
        runs = available_runs(root)
        if not runs:
            raise _not_found("latest", root)
        return runs[-1]
    candidate = Path(path_or_latest)
    for p in (candidate, root / candidate):
        if (p / schema.RUN_JSON).is_file():
            return p
    # A unique prefix of a run id is enough (like git's short hashes).
    matches = [p for p in available_runs(root) if p.name.startswith(str(path_or_latest))]
    if len(matches) == 1:
        return matches[0]
    raise _not_found(str(path_or_latest), root)


# run.json keys whose type the readers rely on (a missing key is read as its default).
_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "run_id": str,
    "status": str,
    "preset": str,
    "config": dict,
    "machine": dict,
    "git": dict,
    "warnings": list,
    "placement": dict,
    "writer": (dict, type(None)),
    "failure": (str, type(None)),
    "manifest": dict,
    "cells_total": int,
    "cells_done": int,
}


def read_meta(path: Path) -> dict[str, Any]:
    """Read run.json and check its schema_version and the types of its keys."""
    meta_path = path / schema.RUN_JSON
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        cause = exc.strerror if isinstance(exc, OSError) else f"not valid JSON: {exc}"
        raise RunFolderError(
            f"{meta_path} cannot be read ({cause}); the run was probably cut off while "
            "writing it. Delete the folder or fix the file by hand."
        ) from exc
    if not isinstance(meta, dict):
        raise RunFolderError(
            f"{meta_path} is not a run description (a JSON {type(meta).__name__}, not an "
            "object). Delete the folder or fix the file by hand."
        )
    version = meta.get("schema_version")
    if version not in schema.KNOWN_SCHEMA_VERSIONS:
        raise UnknownSchemaVersionError(
            f"{meta_path} has schema_version {version!r}, but this bench reads only "
            f"{sorted(schema.KNOWN_SCHEMA_VERSIONS)}. The run was written by a different "
            "version of bench: check out the commit it names in run.json['git'] to read it, "
            "or rerun the measurement with this version (`python -m bench run`)."
        )
    for key, kind in _META_TYPES.items():
        if key in meta and (not isinstance(meta[key], kind) or isinstance(meta[key], bool)):
            raise RunFolderError(
                f"{meta_path}: {key!r} is a {type(meta[key]).__name__}, which no bench writes; "
                "the file was damaged or edited. Fix it by hand or rerun the measurement."
            )
    if "manifest" in meta and not manifest.is_valid(meta["manifest"]):
        raise RunIntegrityError(
            f"{meta_path}: its manifest is malformed, so the folder's files cannot be checked. "
            "Fix it by hand or rerun the measurement."
        )
    return meta


def _read_verdict(path: Path, notes: list[str]) -> dict[str, Any] | None:
    verdict_path = path / schema.VERDICT_JSON
    if not verdict_path.is_file():
        return None
    verdict = read_json_or_none(verdict_path)
    if not isinstance(verdict, dict):
        notes.append(
            f"{schema.VERDICT_JSON} is unreadable and was ignored "
            f"(`python -m bench report {path}` rewrites it)"
        )
        return None
    return verdict


def load(
    path_or_latest: str | Path = "latest",
    results_dir: str | Path | None = None,
    *,
    notify: Callable[[str], None] | None = None,
    repair: bool = True,
) -> RunData:
    """Read a run folder: run.json, trials, micro benchmarks and verdict (if written).

    ``path_or_latest`` is ``"latest"`` (newest run under ``results_dir``), a run
    folder path, a run id (or a unique prefix of one) under ``results_dir``.
    The tables are checked against run.json's manifest; damaged or missing ones
    are rebuilt from ``raw/`` (and, with ``repair``, written back unless the run
    is still being written); what was repaired is passed as one line to ``notify``
    (default: a ``UserWarning``) and kept in ``RunData.notes``. A damaged raw file
    or run.json raises ``RunFolderError`` naming the file and the cause.
    """
    path = resolve_run_path(path_or_latest, results_dir)
    meta = read_meta(path)
    check = FolderCheck(path, meta.get("manifest"))
    check.check_raw()
    run_id = str(meta.get("run_id", path.name))
    trials = schema_table(check.trials(run_id, schema_table), schema.TRIAL_COLUMNS)
    micro = schema_table(check.micro(schema_table), schema.MICRO_COLUMNS)
    if "operation" in micro.columns:  # runs from before the column existed: wait calls
        micro["operation"] = micro["operation"].fillna("wait")
    alive = writer_alive(meta.get("writer"))
    if check.rebuilt and repair and alive is not True:
        check.write_back(meta, atomic_write_bytes)
    if repair and alive is False:
        # The space a killed writer held for recording a failure is no longer needed.
        with contextlib.suppress(OSError):
            (path / schema.RESERVE_FILE).unlink(missing_ok=True)
    notes = list(check.notes)
    verdict = _read_verdict(path, notes)
    if notes:
        line = f"{path.name}: " + "; ".join(notes)
        if notify is None:
            warnings.warn(line, stacklevel=2)
        else:
            notify(line)
    return RunData(
        path=path, meta=meta, trials=trials, micro=micro, verdict=verdict, notes=tuple(notes)
    )
