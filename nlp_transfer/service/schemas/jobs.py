"""Request/response models of /v1/fine_tuning/jobs."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] = Field(
        default_factory=dict, description="TrainConfig keys (as in a recipe YAML), minus output_dir/resume"
    )
    training_file: str | None = Field(
        None, description="id of a file uploaded with POST /v1/files; becomes the dataset"
    )
    accelerate_config: str | None = Field(
        None, description="name of a file in accelerate_configs/ (default cpu.yaml)"
    )


class JobCreated(BaseModel):
    id: str
    status: Status


class Progress(BaseModel):
    step: int
    total: int | None
    fraction: float | None
    steps_per_s: float | None
    eta_s: float | None = Field(None, description="seconds to the last optimizer step at the current rate")


class JobObject(BaseModel):
    id: str
    object: str = "fine_tuning.job"
    status: Status
    config: dict[str, Any]
    training_file: str | None
    accelerate_config: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    interrupted: bool = Field(description="stopped by a server shutdown; it resumes from its checkpoint")
    resumed_from_step: int | None
    progress: Progress
    latest_metrics: dict[str, Any] = Field(description="the last validation metrics the loop logged")
    test_metrics: dict[str, Any] | None
    model_id: str | None = Field(description="the registered model of a succeeded job")
    error: str | None

    @classmethod
    def of(cls, job: Any) -> JobObject:
        total, step, rate = job.progress_total, job.progress_step, job.step_rate
        eta = None
        if job.status == "running" and total and rate:
            eta = round(max(total - step, 0) / rate, 1)
        fraction = round(step / total, 4) if total else None
        return cls(
            id=job.id, status=job.status, config=job.config, training_file=job.training_file,
            accelerate_config=job.accelerate_config, created_at=_utc(job.created_at), started_at=_utc(job.started_at),
            finished_at=_utc(job.finished_at), attempts=job.attempts, interrupted=job.interrupted,
            resumed_from_step=job.resumed_from_step,
            progress=Progress(step=step, total=total, fraction=fraction, steps_per_s=rate, eta_s=eta),
            latest_metrics=job.latest_metrics or {}, test_metrics=job.test_metrics, model_id=job.model_id, error=job.error,
        )  # fmt: skip


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; they were written in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


class JobList(BaseModel):
    object: str = "list"
    data: list[JobObject]
    has_more: bool


class EventObject(BaseModel):
    seq: int
    created_at: datetime
    type: str
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Any) -> EventObject:
        return cls(seq=event.seq, created_at=_utc(event.created_at), type=event.type, data=event.data or {})


class EventList(BaseModel):
    object: str = "list"
    data: list[EventObject]


class Checkpoint(BaseModel):
    step: int
    name: str


class CheckpointList(BaseModel):
    object: str = "list"
    data: list[Checkpoint]
