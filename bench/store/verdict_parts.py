"""The leaves of verdict.json's typed tree: intervals, growth fits, metrics, comparisons, regimes.

Each class owns its part of the serialised form both ways; the tree above them
(claims, families, the whole verdict) and the reader are in
``bench.store.verdict_file``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]


def split(d: Mapping[str, Any], keys: tuple[str, ...]) -> Json:
    """The keys of ``d`` no typed field holds (kept as they are)."""
    return {k: v for k, v in d.items() if k not in keys}


def optional(out: Json, key: str, value: Any) -> None:
    """Keys some blocks lack are written only when present (None means absent)."""
    if value is not None:
        out[key] = value


@dataclass(frozen=True)
class Interval:
    """A ratio with its interval (``bench.analyse.intervals.RatioEstimate.as_dict``)."""

    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float | None
    method: str
    df: float | None = None
    log_se: float | None = None
    n_pairs: int | None = None
    n_numerator: int | None = None
    n_denominator: int | None = None
    extra: Json = field(default_factory=dict)

    KEYS = ("ratio", "ci_low", "ci_high", "confidence", "method", "df", "log_se",
            "n_pairs", "n_numerator", "n_denominator")  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Interval | None:
        if d is None:
            return None
        return cls(**{k: d.get(k) for k in cls.KEYS}, extra=split(d, cls.KEYS))

    def to_dict(self) -> Json:
        return {**{k: getattr(self, k) for k in self.KEYS}, **self.extra}


@dataclass(frozen=True)
class Fit:
    """One backend's growth fit against descriptors (``SlopeFit.as_dict``) and its class."""

    slope_per_1000: float | None
    slope_per_1000_ci_low: float | None
    slope_per_1000_ci_high: float | None
    rel_growth_per_1000: float | None
    rel_growth_per_1000_ci_low: float | None
    rel_growth_per_1000_ci_high: float | None
    projected_rel_increase: float | None
    projected_rel_increase_ci_low: float | None
    projected_rel_increase_ci_high: float | None
    confidence: float | None
    method: str
    n_points: int
    n_levels: int
    n_blocks: int
    df: float | None
    min_reps_per_level: int
    x_min: float | None
    x_max: float | None
    fitted_at_x_min: float | None
    slope_words: str
    class_: str  # "class" on disk: FLAT, GROWING, FALLING, UNCLEAR, INSUFFICIENT
    class_reason: str
    extra: Json = field(default_factory=dict)

    KEYS = ("slope_per_1000", "slope_per_1000_ci_low", "slope_per_1000_ci_high",
            "rel_growth_per_1000", "rel_growth_per_1000_ci_low", "rel_growth_per_1000_ci_high",
            "projected_rel_increase", "projected_rel_increase_ci_low",
            "projected_rel_increase_ci_high", "confidence", "method", "n_points", "n_levels",
            "n_blocks", "df", "min_reps_per_level", "x_min", "x_max", "fitted_at_x_min",
            "slope_words")  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Fit:
        keys = (*cls.KEYS, "class", "class_reason")
        return cls(
            **{k: d.get(k) for k in cls.KEYS},
            class_=d.get("class", ""),
            class_reason=d.get("class_reason", ""),
            extra=split(d, keys),
        )

    def to_dict(self) -> Json:
        return {
            **{k: getattr(self, k) for k in self.KEYS},
            "class": self.class_,
            "class_reason": self.class_reason,
            **self.extra,
        }


@dataclass(frozen=True)
class MetricVerdict:
    """One of claim 3's metrics: its status and every backend's growth fit."""

    metric: str
    role: str
    status: str
    reason: str
    unit: str | None = None
    conditions: str | None = None
    backends: dict[str, Fit] | None = None
    slope_comparison: dict[str, str] | None = None
    extra: Json = field(default_factory=dict)

    KEYS = ("metric", "role", "status", "reason", "unit", "conditions", "backends",
            "slope_comparison")  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MetricVerdict:
        backends = d.get("backends")
        return cls(
            metric=d["metric"], role=d.get("role", ""), status=d["status"],
            reason=d.get("reason", ""), unit=d.get("unit"), conditions=d.get("conditions"),
            backends=None if backends is None
            else {b: Fit.from_dict(f) for b, f in backends.items()},
            slope_comparison=d.get("slope_comparison"), extra=split(d, cls.KEYS),
        )  # fmt: skip

    def to_dict(self) -> Json:
        out: Json = {"metric": self.metric, "role": self.role, "status": self.status,
                     "reason": self.reason}  # fmt: skip
        optional(out, "unit", self.unit)
        optional(out, "conditions", self.conditions)
        if self.backends is not None:
            out["backends"] = {b: f.to_dict() for b, f in self.backends.items()}
        optional(out, "slope_comparison", self.slope_comparison)
        return {**out, **self.extra}


@dataclass(frozen=True)
class Comparison:
    """One cell of a regime: the subject against one backend, its decision and 95% interval."""

    backend: str
    metric: str
    loop: str
    connections: int | None
    judged: bool
    class_: str  # "class" on disk: the comparison's class under the claim's rule
    class_reason: str
    ratio_definition: str
    decision: Interval | None
    interval_95: Interval | None
    extra: Json = field(default_factory=dict)

    KEYS = ("backend", "metric", "loop", "connections", "judged", "class", "class_reason",
            "ratio_definition", "decision", "interval_95")  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Comparison:
        return cls(
            backend=d["backend"], metric=d.get("metric", ""), loop=d.get("loop", ""),
            connections=d.get("connections"), judged=bool(d.get("judged")),
            class_=d.get("class", ""), class_reason=d.get("class_reason", ""),
            ratio_definition=d.get("ratio_definition", ""),
            decision=Interval.from_dict(d.get("decision")),
            interval_95=Interval.from_dict(d.get("interval_95")), extra=split(d, cls.KEYS),
        )  # fmt: skip

    def to_dict(self) -> Json:
        return {
            "backend": self.backend, "metric": self.metric, "loop": self.loop,
            "connections": self.connections, "judged": self.judged, "class": self.class_,
            "class_reason": self.class_reason, "ratio_definition": self.ratio_definition,
            "decision": self.decision.to_dict() if self.decision else None,
            "interval_95": self.interval_95.to_dict() if self.interval_95 else None,
            **self.extra,
        }  # fmt: skip


@dataclass(frozen=True)
class Regime:
    """One regime of claim 2 or of edge vs level: its status and its comparisons."""

    regime: str
    status: str
    reason: str
    where: str
    comparisons: list[Comparison]
    decided_by: list[Json]
    extra: Json = field(default_factory=dict)

    KEYS = ("regime", "status", "reason", "where", "comparisons", "decided_by")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Regime:
        return cls(
            regime=d["regime"], status=d["status"], reason=d.get("reason", ""),
            where=d.get("where", ""),
            comparisons=[Comparison.from_dict(c) for c in d.get("comparisons") or []],
            decided_by=list(d.get("decided_by") or []), extra=split(d, cls.KEYS),
        )  # fmt: skip

    def to_dict(self) -> Json:
        return {
            "regime": self.regime, "status": self.status, "reason": self.reason,
            "where": self.where, "comparisons": [c.to_dict() for c in self.comparisons],
            "decided_by": self.decided_by, **self.extra,
        }  # fmt: skip
