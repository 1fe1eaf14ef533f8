"""model registry: registered models, aliases and alias history

Revision ID: 0002_registry
Revises: 0001_jobs_files
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_registry"
down_revision = "0001_jobs_files"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("run_dir", sa.String(1024), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=True, index=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("method", sa.String(128), nullable=False),
        sa.Column("base_model", sa.String(512), nullable=False),
        sa.Column("primary_metric", sa.String(64), nullable=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("card", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True, index=True),
        sa.UniqueConstraint("run_dir", name="uq_registered_models_run_dir"),
    )
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column(
            "model_id",
            sa.String(40),
            sa.ForeignKey("registered_models.id", ondelete="RESTRICT"),
            nullable=False,
            index=True,
        ),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "model_alias_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alias", sa.String(64), nullable=False, index=True),
        sa.Column("model_id", sa.String(40), nullable=True),
        sa.Column("previous_model_id", sa.String(40), nullable=True),
        sa.Column("moved_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_alias_history")
    op.drop_table("model_aliases")
    op.drop_table("registered_models")
