"""Families of backends in the verdict: who is epoll, select and poll in each, and the overall word.

Every claim is judged per family of backends (``servers.registry``: the Python
event loop, the C twins, external servers), with the same rules, on the
family's own trials (``RULES["families"]``); a family's label is declared with the
family constants (``servers.registry.FAMILY_LOOKS``). A family's roles are found by
family and mechanism, never by a backend's name: the subject is its backend
whose mechanism is epoll, the comparators its select and poll backends, the
edge-triggered twin its epoll-et backend, the io_uring readiness one its uring-poll
backend, the io_uring completion one its uring-completion backend. The claim's overall
status across families and the one sentence that says where they agree and differ
follow ``RULES["family_overall"]`` (``overall_status``, ``agreement_sentence``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.analyse.rules import (
    COMPARATOR_MECHANISMS,
    EDGE_MECHANISM,
    HEADLINE_FAMILY,
    INCONCLUSIVE,
    NOT_SUPPORTED,
    PARTLY,
    SUBJECT_MECHANISM,
    SUPPORTED,
)
from bench.analyse.rules.uring import URING_COMPLETION_MECHANISM, URING_READINESS_MECHANISM
from servers import registry

CLAIM_DECIDED = (SUPPORTED, PARTLY, NOT_SUPPORTED)


@dataclass(frozen=True)
class FamilyRoles:
    """One family's backends by role (None / () where the family has no such backend)."""

    family: str
    label: str
    subject: str | None
    comparators: tuple[str, ...]
    edge: str | None
    uring_poll: str | None = None
    """Its io_uring readiness backend (mechanism URING_READINESS_MECHANISM)."""
    uring_completion: str | None = None
    """Its io_uring completion server (mechanism URING_COMPLETION_MECHANISM)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "label": self.label,
            "subject": self.subject,
            "comparators": list(self.comparators),
            "edge": self.edge,
            "uring_poll": self.uring_poll,
            "uring_completion": self.uring_completion,
        }

    def words(self) -> str:
        """'c-epoll against c-select and c-poll'."""
        others = " and ".join(self.comparators) or "no select or poll backend"
        return f"{self.subject} against {others}"


def _first(backends: Sequence[registry.Backend], mechanism: str) -> str | None:
    return next((b.name for b in backends if b.mechanism == mechanism), None)


def roles_of(family: str) -> FamilyRoles:
    """The family's backends by role, the first registered of each mechanism."""
    members = [b for b in registry.all_backends() if b.family == family]
    comparators = tuple(
        name for name in (_first(members, m) for m in COMPARATOR_MECHANISMS) if name is not None
    )
    return FamilyRoles(
        family=family,
        label=registry.family_label(family),
        subject=_first(members, SUBJECT_MECHANISM),
        comparators=comparators,
        edge=_first(members, EDGE_MECHANISM),
        uring_poll=_first(members, URING_READINESS_MECHANISM),
        uring_completion=_first(members, URING_COMPLETION_MECHANISM),
    )


def headline_roles() -> FamilyRoles:
    return roles_of(HEADLINE_FAMILY)


def family_of(backend: str) -> str | None:
    """The registered family of ``backend``; None when this checkout does not know it."""
    try:
        return registry.get(backend).family
    except registry.UnknownBackend:
        return None


def _families_with_subject() -> list[str]:
    seen: list[str] = []
    for b in registry.all_backends():
        if b.family not in seen and b.mechanism == SUBJECT_MECHANISM:
            seen.append(b.family)
    return seen


def judged_families(trials: pd.DataFrame) -> list[FamilyRoles]:
    """The headline family, then every other family with an epoll backend that has trials."""
    present = set(trials["backend"].dropna().astype(str)) if not trials.empty else set()
    out = [headline_roles()]
    for family in _families_with_subject():
        if family == HEADLINE_FAMILY:
            continue
        members = set(registry.names(family))
        if members & present:
            out.append(roles_of(family))
    return out


def owner(backend: str, judged: Sequence[str]) -> str:
    """The judged family whose block shows ``backend`` (the headline when its own is not judged)."""
    family = family_of(backend)
    return family if family in judged else HEADLINE_FAMILY


def family_rows(trials: pd.DataFrame, roles: FamilyRoles, judged: Sequence[str]) -> pd.DataFrame:
    """The trials a family's block is judged on: its own backends (``owner``)."""
    if trials.empty:
        return trials
    owners = {b: owner(b, judged) for b in trials["backend"].dropna().astype(str).unique()}
    mask = trials["backend"].astype("string").map(owners) == roles.family
    return trials[mask.fillna(False).astype(bool)]


# ---------------------------------------------------------------- the overall word


def overall_status(
    statuses: Sequence[str], decided: Sequence[str] = CLAIM_DECIDED, differ: str = PARTLY
) -> str:
    """The shared decided status, ``differ`` when decided statuses differ, else INCONCLUSIVE."""
    shared = {s for s in statuses if s in decided}
    if not shared:
        return INCONCLUSIVE
    return shared.pop() if len(shared) == 1 else differ


def _names(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def agreement_sentence(
    entries: Sequence[tuple[str, str, str]],
    decided: Sequence[str] = CLAIM_DECIDED,
    noted: Sequence[str] = (INCONCLUSIVE, PARTLY),
) -> str:
    """One sentence: where the families agree and where they differ.

    ``entries`` are (label, status, note) per family judged, headline first. A
    note is shown for the statuses in ``noted`` and for every family when
    decided statuses differ.
    """
    if not entries:
        return "no family was judged"
    split = len({s for _, s, _ in entries if s in decided}) > 1
    groups: dict[tuple[str, str], list[str]] = {}
    for label, status, note in entries:
        shown = note if (split or status in noted) and note else ""
        groups.setdefault((status, shown), []).append(label)
    parts = []
    for (status, note), labels in groups.items():
        head = f"{_names(labels)} agree" if len(labels) > 1 else labels[0]
        parts.append(f"{head}: {status}" + (f" ({note})" if note else ""))
    if len(entries) == 1:
        label, status, note = entries[0]
        return f"{label} only (no other family measured): {status}" + (
            f" ({note})" if note and status in noted else ""
        )
    return ("The families differ: " if split else "") + "; ".join(parts)


def assemble_claim(
    blocks: Sequence[tuple[FamilyRoles, dict[str, Any]]],
    note: Callable[[FamilyRoles, dict[str, Any]], str],
) -> dict[str, Any]:
    """The claim as verdict.json holds it: the headline's block, the overall status, the families.

    The headline family's fields stay at the top (so a run of the Python family
    alone reads exactly as before); ``status`` is the overall one
    (``RULES["family_overall"]``), ``headline_status`` the headline's own.
    """
    head_roles, head = blocks[0]
    statuses = [b["status"] for _, b in blocks]
    entries = [(r.label, b["status"], note(r, b)) for r, b in blocks]
    families = {
        r.family: {
            "family": r.family,
            "label": r.label,
            "roles": r.as_dict(),
            **{k: v for k, v in b.items() if k not in ("id", "claim")},
        }
        for r, b in blocks
    }
    out = dict(head)
    out["status"] = overall_status(statuses)
    out["headline_family"] = head_roles.family
    out["headline_status"] = head["status"]
    out["family_agreement"] = agreement_sentence(entries)
    out["families"] = families
    out["overall_rules"] = ["families", "family_overall"]
    return out


def per_family(
    trials: pd.DataFrame, judge: Callable[[pd.DataFrame, FamilyRoles, bool], dict[str, Any]]
) -> list[tuple[FamilyRoles, dict[str, Any]]]:
    """``judge(rows, roles, is_headline)`` for every judged family, headline first."""
    judged = judged_families(trials)
    names = [r.family for r in judged]
    return [
        (r, judge(family_rows(trials, r, names), r, r.family == HEADLINE_FAMILY)) for r in judged
    ]
