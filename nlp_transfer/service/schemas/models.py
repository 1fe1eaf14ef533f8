"""Request and response bodies of the registry endpoints (/v1/models, /v1/aliases).

Why separate from the ORM rows: the API promises these fields to scripts; the tables may change
under a migration without the JSON changing.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from nlp_transfer.service.registry.store import ALIAS_PATTERN


def _utc(value: datetime) -> datetime:
    """SQLite returns the stored UTC timestamps without a zone; say they are UTC, as PostgreSQL does."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


UTCDatetime = Annotated[datetime, AfterValidator(_utc)]


class ModelSummary(BaseModel):
    """One registered model as `GET /v1/models` lists it."""

    id: str
    object: Literal["model"] = "model"
    name: str
    task: str
    method: str
    base_model: str
    source: Literal["adapters", "job"] = Field(description="a run under --adapters, or a job's result")
    job_id: str | None = None
    primary_metric: str | None = Field(None, description="the task's headline test metric")
    primary_metric_value: float | None = None
    aliases: list[str] = Field(default_factory=list)
    created_at: UTCDatetime


class ModelDetail(ModelSummary):
    """`GET /v1/models/{id}`: the summary plus every metric the run recorded and its model card."""

    run_dir: str
    metrics: dict[str, Any]
    card: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelSummary]
    has_more: bool


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool = True
    files_removed: str | None = Field(None, description="the job's run directory removed, if any")


class AliasMove(BaseModel):
    """`PUT /v1/aliases/{name}`: point the alias at this model."""

    model_id: str = Field(min_length=1, max_length=40)


class AliasOut(BaseModel):
    name: str = Field(pattern=ALIAS_PATTERN)
    model_id: str
    updated_at: UTCDatetime


class AliasList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AliasOut]


class AliasHistoryEntry(BaseModel):
    alias: str
    model_id: str | None = Field(description="null when the alias was removed")
    previous_model_id: str | None
    moved_at: UTCDatetime


class AliasHistoryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AliasHistoryEntry] = Field(description="newest first")
