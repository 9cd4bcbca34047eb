"""verdict.json as a typed tree: the one place that writes and reads its keys.

``bench.analyse.verdict.compute_verdict`` builds a ``Verdict``; ``write_verdict``
writes ``Verdict.to_dict()``; charts, the report and ``bench summarise`` read it
back with ``read_verdict`` (or ``Verdict.from_dict``) instead of recomputing the
fits and intervals it holds. Each class below owns its part of the serialised
form both ways (like asv's results or locust's ``StatsEntry``), so
``from_dict(d).to_dict() == d`` for every document this version writes.

What is typed: the claims, each family's block, claim 2's regimes and their
comparisons (with the decision and 95% intervals as ``Interval``), claim 3's
metrics with one growth ``Fit`` per backend, and the sensitivity table. Parts
whose shape differs from claim to claim or is free-form (claim 1's per-backend
evidence, ``decided_by`` entries, a comparison's mechanism and shown blocks,
``method``, ``data_quality``, ``edge_vs_level``, ``crossover``, ``churn``) stay
dicts, in a field or in each class's ``extra``, and round-trip unchanged.

Versions: ``schema_version`` is ``VERDICT_SCHEMA_VERSION``, 2. A file with
``schema_version`` 1 or none (written before this module, when verdict.json
copied the run folder's version) is version 1 and has no migration: its shape changed several
times within version 1, so the reader refuses it and names the remedy,
``python -m bench report RUN``, which rewrites it from the run folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.store import schema
from bench.store.files import read_json_or_none
from bench.store.integrity import RunFolderError
from bench.store.results import UnknownSchemaVersionError
from bench.store.verdict_parts import (
    Comparison,
    Fit,
    Interval,
    Json,
    MetricVerdict,
    Regime,
    optional,
    split,
)

__all__ = [
    "KNOWN_VERDICT_VERSIONS",
    "VERDICT_SCHEMA_VERSION",
    "Claim",
    "Comparison",
    "Evidence",
    "FamilyVerdict",
    "Fit",
    "Interval",
    "MetricVerdict",
    "Regime",
    "Sensitivity",
    "SensitivityRow",
    "Verdict",
    "VerdictVersionError",
    "check_version",
    "read_verdict",
]

VERDICT_SCHEMA_VERSION: Final = 2
KNOWN_VERDICT_VERSIONS: Final = frozenset({VERDICT_SCHEMA_VERSION})
VERSION_KEY: Final = "schema_version"


class VerdictVersionError(UnknownSchemaVersionError):
    """verdict.json was written by a bench whose verdict schema this one cannot read."""


@dataclass(frozen=True)
class Evidence:
    """What a claim rests on: claim 2's regimes, claim 3's metrics; claim 1's stays in extra."""

    regimes: list[Regime] | None = None
    metrics: list[MetricVerdict] | None = None
    extra: Json = field(default_factory=dict)

    KEYS = ("regimes", "metrics")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Evidence:
        d = d or {}
        regimes, metrics = d.get("regimes"), d.get("metrics")
        return cls(
            regimes=None if regimes is None else [Regime.from_dict(r) for r in regimes],
            metrics=None if metrics is None else [MetricVerdict.from_dict(m) for m in metrics],
            extra=split(d, cls.KEYS),
        )

    def to_dict(self) -> Json:
        out: Json = {}
        if self.regimes is not None:
            out["regimes"] = [r.to_dict() for r in self.regimes]
        if self.metrics is not None:
            out["metrics"] = [m.to_dict() for m in self.metrics]
        return {**out, **self.extra}


# The keys a claim's block and a family's block share.
_BLOCK_KEYS = ("status", "conditions", "summary", "reason", "evidence", "decided_by")


@dataclass(frozen=True)
class FamilyVerdict:
    """One family's judgement of a claim (``bench.analyse.families.assemble_claim``)."""

    family: str
    label: str
    roles: Json
    status: str
    conditions: str
    summary: str
    reason: str
    evidence: Evidence
    decided_by: list[Json] | None = None
    extra: Json = field(default_factory=dict)

    KEYS = ("family", "label", "roles", *_BLOCK_KEYS)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FamilyVerdict:
        return cls(
            family=d.get("family", ""), label=d.get("label", ""), roles=d.get("roles") or {},
            status=d["status"], conditions=d.get("conditions", ""), summary=d.get("summary", ""),
            reason=d.get("reason", ""), evidence=Evidence.from_dict(d.get("evidence")),
            decided_by=d.get("decided_by"), extra=split(d, cls.KEYS),
        )  # fmt: skip

    def to_dict(self) -> Json:
        out: Json = {
            "family": self.family, "label": self.label, "roles": self.roles,
            "status": self.status, "conditions": self.conditions, "summary": self.summary,
            "reason": self.reason, "evidence": self.evidence.to_dict(),
        }  # fmt: skip
        optional(out, "decided_by", self.decided_by)
        return {**out, **self.extra}


@dataclass(frozen=True)
class Claim:
    """One claim: the overall status, the headline family's block at the top, every family."""

    id: str
    claim: str
    status: str
    conditions: str
    summary: str
    reason: str
    evidence: Evidence
    families: dict[str, FamilyVerdict]
    headline_family: str | None = None
    headline_status: str | None = None
    family_agreement: str = ""
    overall_rules: list[str] = field(default_factory=list)
    decided_by: list[Json] | None = None
    extra: Json = field(default_factory=dict)

    KEYS = ("id", "claim", "families", "headline_family", "headline_status",
            "family_agreement", "overall_rules", *_BLOCK_KEYS)  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Claim:
        return cls(
            id=str(d["id"]), claim=d.get("claim", ""), status=d["status"],
            conditions=d.get("conditions", ""), summary=d.get("summary", ""),
            reason=d.get("reason", ""), evidence=Evidence.from_dict(d.get("evidence")),
            families={k: FamilyVerdict.from_dict(f) for k, f in (d.get("families") or {}).items()},
            headline_family=d.get("headline_family"), headline_status=d.get("headline_status"),
            family_agreement=d.get("family_agreement", ""),
            overall_rules=list(d.get("overall_rules") or []), decided_by=d.get("decided_by"),
            extra=split(d, cls.KEYS),
        )  # fmt: skip

    def to_dict(self) -> Json:
        out: Json = {
            "id": self.id, "claim": self.claim, "status": self.status,
            "conditions": self.conditions, "summary": self.summary, "reason": self.reason,
            "evidence": self.evidence.to_dict(), "headline_family": self.headline_family,
            "headline_status": self.headline_status, "family_agreement": self.family_agreement,
            "families": {k: f.to_dict() for k, f in self.families.items()},
            "overall_rules": self.overall_rules,
        }  # fmt: skip
        optional(out, "decided_by", self.decided_by)
        return {**out, **self.extra}


@dataclass(frozen=True)
class SensitivityRow:
    """One status under each analysis (keys: the analyses' names, ``Sensitivity.analyses``)."""

    where: str
    statuses: dict[str, str | None]
    differs: bool


@dataclass(frozen=True)
class Sensitivity:
    """Every status with and without the client-bound exclusion (``RULES["sensitivity"]``)."""

    rule: str
    analyses: list[str]
    trials_client_bound: int
    rows: list[SensitivityRow]
    differ: list[str]
    sentence: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Sensitivity | None:
        if d is None:
            return None
        analyses = list(d.get("analyses") or [])
        rows = [
            SensitivityRow(r["where"], {a: r.get(a) for a in analyses}, bool(r.get("differs")))
            for r in d.get("statuses") or []
        ]
        return cls(
            rule=d.get("rule", ""), analyses=analyses,
            trials_client_bound=int(d.get("trials_client_bound") or 0), rows=rows,
            differ=list(d.get("differ") or []), sentence=d.get("sentence", ""),
        )  # fmt: skip

    def to_dict(self) -> Json:
        rows = [{"where": r.where, **r.statuses, "differs": r.differs} for r in self.rows]
        return {
            "rule": self.rule, "analyses": self.analyses,
            "trials_client_bound": self.trials_client_bound, "statuses": rows,
            "differ": self.differ, "sentence": self.sentence,
        }  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """The whole verdict.json."""

    run_id: str
    generated_utc: str
    warnings: list[str]
    method: Json
    data_quality: Json
    claims: list[Claim]
    sensitivity: Sensitivity | None = None
    edge_vs_level: Json | None = None
    uring: Json | None = None
    """The io_uring question (``bench.analyse.uring_question``); None in older verdicts."""
    crossover: Json | None = None
    churn: Json | None = None
    schema_version: int = VERDICT_SCHEMA_VERSION
    extra: Json = field(default_factory=dict)

    KEYS = (VERSION_KEY, "run_id", "generated_utc", "warnings", "method",
            "data_quality", "claims", "sensitivity", "edge_vs_level", "uring", "crossover",
            "churn")  # fmt: skip

    def claim(self, claim_id: str) -> Claim | None:
        return next((c for c in self.claims if c.id == claim_id), None)

    def growth_fits(self, metric: str, claim_id: str = "3") -> dict[str, Fit]:
        """Every backend's growth fit of one claim-3 metric, over all families (charts' words)."""
        claim = self.claim(claim_id)
        out: dict[str, Fit] = {}
        for block in claim.families.values() if claim else ():
            for m in block.evidence.metrics or []:
                if m.metric == metric:
                    out.update(m.backends or {})
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "verdict.json") -> Verdict:
        """The typed verdict; refuses a version this bench does not know (``check_version``)."""
        version = check_version(d, where)
        return cls(
            run_id=d.get("run_id", ""), generated_utc=d.get("generated_utc", ""),
            warnings=list(d.get("warnings") or []), method=d.get("method") or {},
            data_quality=d.get("data_quality") or {},
            claims=[Claim.from_dict(c) for c in d.get("claims") or []],
            sensitivity=Sensitivity.from_dict(d.get("sensitivity")),
            edge_vs_level=d.get("edge_vs_level"), uring=d.get("uring"),
            crossover=d.get("crossover"), churn=d.get("churn"),
            schema_version=version, extra=split(d, cls.KEYS),
        )  # fmt: skip

    def to_dict(self) -> Json:
        return {
            VERSION_KEY: self.schema_version,
            "run_id": self.run_id, "generated_utc": self.generated_utc,
            "warnings": self.warnings, "method": self.method, "data_quality": self.data_quality,
            "claims": [c.to_dict() for c in self.claims],
            "edge_vs_level": self.edge_vs_level, "uring": self.uring,
            "crossover": self.crossover, "churn": self.churn,
            "sensitivity": self.sensitivity.to_dict() if self.sensitivity else None,
            **self.extra,
        }  # fmt: skip


def check_version(d: Mapping[str, Any], where: str = "verdict.json") -> int:
    """The document's verdict schema version; a clear error naming the remedy otherwise."""
    version = d.get(VERSION_KEY, 1)
    if version in KNOWN_VERDICT_VERSIONS:
        return int(version)
    if version == 1:
        cause = "has verdict schema version 1 (written by an older bench, before the typed verdict)"
    else:
        cause = (
            f"has verdict schema version {version!r}; this bench reads only "
            f"{sorted(KNOWN_VERDICT_VERSIONS)} (it was written by a newer bench)"
        )
    raise VerdictVersionError(
        f"{where} {cause}. Rewrite it from the run folder with `python -m bench report RUN` "
        "(no measuring), or check out the bench that wrote it."
    )


def read_verdict(run_path: Path) -> Verdict | None:
    """The run folder's verdict.json as a typed tree; None when the run has none.

    One that is not JSON (cut off, emptied) is treated as none: it is derived data,
    which ``bench.store.results.load`` reports and ``bench report`` rewrites. One of
    an unknown version, or JSON that is not a verdict, is refused with the remedy.
    """
    path = run_path / schema.VERDICT_JSON
    doc = read_json_or_none(path)
    if doc is None:
        return None
    try:
        return Verdict.from_dict(doc, where=str(path))
    except VerdictVersionError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RunFolderError(
            f"{path} is not a verdict this bench can read ({type(exc).__name__}: {exc}): "
            f"rewrite it with `python -m bench report {run_path}`"
        ) from exc


def load_verdict(path: Path) -> dict[str, Any] | None:
    """A run folder's verdict.json as written (a dict), or None when there is none or it is
    not JSON (derived data: ``bench report`` rewrites it)."""
    doc = read_json_or_none(path / schema.VERDICT_JSON)
    return doc if isinstance(doc, dict) else None
