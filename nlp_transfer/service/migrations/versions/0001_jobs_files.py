"""files, jobs and job events

Revision ID: 0001_jobs_files
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_jobs_files"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("columns", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("training_file", sa.String(40), sa.ForeignKey("files.id"), nullable=True),
        sa.Column("accelerate_config", sa.String(255), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False, index=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("worker_id", sa.String(255), nullable=True),
        sa.Column("job_dir", sa.String(1024), nullable=True),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("pid_start", sa.String(32), nullable=True),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("resume", sa.Boolean, nullable=False),
        sa.Column("interrupted", sa.Boolean, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("events_offset", sa.Integer, nullable=False),
        sa.Column("progress_step", sa.Integer, nullable=False),
        sa.Column("progress_total", sa.Integer, nullable=True),
        sa.Column("resumed_from_step", sa.Integer, nullable=True),
        sa.Column("step_rate", sa.Float, nullable=True),
        sa.Column("latest_metrics", sa.JSON, nullable=False),
        sa.Column("test_metrics", sa.JSON, nullable=True),
        sa.Column("model_id", sa.String(40), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_jobs_idempotency_key"),
    )
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "job_id", sa.String(40), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.UniqueConstraint("job_id", "seq", name="uq_job_events_seq"),
    )


def downgrade() -> None:
    op.drop_table("job_events")
    op.drop_table("jobs")
    op.drop_table("files")
