"""A rollout's files: ``plan.json`` and one ``units/<unit>.json`` per unit (pydantic models, atomic writes)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from cortex import atomic_file
from cortex.errors import CortexError
from cortex.rollout.pieces import PieceStore
from cortex.sources.base import SourceOptions

Status = Literal["pending", "migrating", "interrupted", "failed", "verified", "live", "reverted"]
#: statuses ``rollout run`` works on by default (verified and live units are done)
RUNNABLE = ("pending", "migrating", "interrupted", "failed", "reverted")


class PlannedUnit(BaseModel):
    name: str  # what the commands take: the value as text, e.g. "ws-1"
    value: str | int | float | bool
    where: str  # the unit's subset of the source (canonical cortex.where text)
    count: int  # records planned (counted by `plan`)
    shard_key: str | int | None = None  # with --shard-key-field: the unit's custom shard key


class Plan(BaseModel):
    name: str
    source: str
    source_type: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)  # SourceOptions fields (no secrets, no where)
    base_where: str | None = None  # the plan's own --where, ANDed into every unit
    by: str
    collection: str
    target: dict[str, Any] = Field(default_factory=dict)  # path / url / prefer_grpc / grpc_port as planned
    tenant_index: bool = True
    shard_key_field: str | None = None
    units: list[PlannedUnit]
    missing: int = 0  # records without the field: no unit moves them
    created: float = Field(default_factory=time.time)

    def unit(self, name: str) -> PlannedUnit:
        for u in self.units:
            if u.name == name:
                return u
        shown = ", ".join(u.name for u in self.units[:8]) + (" ..." if len(self.units) > 8 else "")
        raise CortexError(f"rollout '{self.name}' has no unit {name!r}; its units: {shown}")

    def source_options(self, where: str | None = None) -> SourceOptions:
        return SourceOptions(**{**self.options, "where": where})


class UnitState(BaseModel):
    name: str
    value: str | int | float | bool
    where: str
    status: Status = "pending"
    planned: int = 0
    counts: dict[str, int] = Field(default_factory=dict)  # read / written / rejected / skipped / duplicates
    verify: dict[str, Any] | None = None  # ok, expected, actual, missing, extra, mismatches
    error: str | None = None
    migration_id: str | None = None
    started: float | None = None
    migrated: float | None = None
    verified: float | None = None
    promoted: float | None = None
    reverted: float | None = None
    updated: float = 0.0
    host: str | None = None
    pid: int | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)  # [{status, at, host}], newest last

    def moved_to(self, status: Status, **changes: Any) -> UnitState:
        now = time.time()
        d = {**self.model_dump(), **changes, "status": status, "host": socket.gethostname(), "pid": os.getpid()}
        d["history"] = (self.history + [{"status": status, "at": now, "host": d["host"]}])[-50:]
        return UnitState(**d)


class Rollout:
    """The files of one rollout under ``<state_dir>/rollouts/<name>/``."""

    def __init__(self, state_dir: str | Path, name: str) -> None:
        self.name = name
        self.dir = Path(state_dir) / "rollouts" / name
        self.units = PieceStore(self.dir / "units")

    @property
    def plan_path(self) -> Path:
        return self.dir / "plan.json"

    def exists(self) -> bool:
        return self.plan_path.exists()

    def plan(self) -> Plan:
        data = atomic_file.read_json(self.plan_path)
        if data is None:
            raise CortexError(f"no rollout '{self.name}' in {self.dir.parent}; plan it first with "
                              "`cortex qdrant rollout plan --source SRC --by FIELD`")
        try:
            return Plan(**data)
        except ValidationError as e:
            raise CortexError(f"{self.plan_path}: not a rollout plan ({e.errors()[0]['msg']}); plan it again "
                              "with `cortex qdrant rollout plan ... --replace`") from e

    def save_plan(self, plan: Plan) -> None:
        atomic_file.write_json(self.plan_path, plan.model_dump())

    def unit(self, name: str) -> UnitState | None:
        d = self.units.read(name)
        return UnitState(**d) if d is not None else None

    def save_unit(self, u: UnitState) -> None:
        self.units.write(u.name, u.model_dump(exclude={"name", "updated"}))

    def all_units(self) -> dict[str, UnitState]:
        return {n: UnitState(**d) for n, d in self.units.all().items()}

    def effective_status(self, u: UnitState) -> str:
        """``migrating`` whose writer is gone (killed) reads as ``interrupted``."""
        if u.status == "migrating" and not self.units.is_locked(u.name):
            return "interrupted"
        return u.status


def rollouts(state_dir: str | Path) -> list[str]:
    root = Path(state_dir) / "rollouts"
    return sorted(p.parent.name for p in root.glob("*/plan.json")) if root.is_dir() else []


def resolve(state_dir: str | Path, name: str | None) -> Rollout:
    """The rollout called ``name``, or the only one there is."""
    if name:
        r = Rollout(state_dir, name)
        r.plan()  # a clear error when it does not exist
        return r
    names = rollouts(state_dir)
    if not names:
        raise CortexError(f"no rollout planned in {state_dir}; plan one with "
                          "`cortex qdrant rollout plan --source SRC --by workspace_id`")
    if len(names) > 1:
        raise CortexError(f"{len(names)} rollouts in {state_dir} ({', '.join(names)}); say which with --name")
    return Rollout(state_dir, names[0])
