"""transcription: the persisted job queue, transcripts per leg, and their full-text index
(a GIN-indexed tsvector on PostgreSQL, a term table on SQLite)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 17:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import callcenter.storage.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transcription_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("leg", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("engine", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=120), nullable=False),
        sa.Column("claimed_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("lease_until", callcenter.storage.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("available_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name=op.f("fk_transcription_jobs_call_id_calls")),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"], name=op.f("fk_transcription_jobs_recording_id_recordings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcription_jobs")),
        sa.UniqueConstraint("path", "engine", name=op.f("uq_transcription_jobs_path_engine")),
    )
    with op.batch_alter_table("transcription_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transcription_jobs_call_id"), ["call_id"], unique=False)
        batch_op.create_index("ix_transcription_jobs_claim", ["status", "available_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_transcription_jobs_recording_id"), ["recording_id"], unique=False
        )

    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("leg", sa.String(length=16), nullable=False),
        sa.Column("speaker", sa.String(length=32), nullable=False),
        sa.Column("engine", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=False),
        # tsvector on PostgreSQL (GIN-indexed below); unused text on SQLite.
        sa.Column(
            "search_vector", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql"), nullable=True
        ),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name=op.f("fk_transcripts_call_id_calls")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["transcription_jobs.id"], name=op.f("fk_transcripts_job_id_transcription_jobs")
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"], name=op.f("fk_transcripts_recording_id_recordings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcripts")),
        sa.UniqueConstraint("job_id", name=op.f("uq_transcripts_job_id")),
    )
    with op.batch_alter_table("transcripts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transcripts_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_transcripts_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_transcripts_recording_id"), ["recording_id"], unique=False)
        batch_op.create_index(
            "ix_transcripts_search_vector", ["search_vector"], unique=False, postgresql_using="gin"
        )

    # SQLite's word index (PostgreSQL uses the tsvector above and leaves this empty).
    op.create_table(
        "transcript_terms",
        sa.Column("term", sa.String(length=64), nullable=False),
        sa.Column("transcript_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["transcript_id"], ["transcripts.id"], name=op.f("fk_transcript_terms_transcript_id_transcripts")
        ),
        sa.PrimaryKeyConstraint("term", "transcript_id", name=op.f("pk_transcript_terms")),
    )
    with op.batch_alter_table("transcript_terms", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transcript_terms_transcript_id"), ["transcript_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("transcript_terms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transcript_terms_transcript_id"))

    op.drop_table("transcript_terms")
    with op.batch_alter_table("transcripts", schema=None) as batch_op:
        batch_op.drop_index("ix_transcripts_search_vector", postgresql_using="gin")
        batch_op.drop_index(batch_op.f("ix_transcripts_recording_id"))
        batch_op.drop_index(batch_op.f("ix_transcripts_created_at"))
        batch_op.drop_index(batch_op.f("ix_transcripts_call_id"))

    op.drop_table("transcripts")
    with op.batch_alter_table("transcription_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transcription_jobs_recording_id"))
        batch_op.drop_index("ix_transcription_jobs_claim")
        batch_op.drop_index(batch_op.f("ix_transcription_jobs_call_id"))

    op.drop_table("transcription_jobs")
