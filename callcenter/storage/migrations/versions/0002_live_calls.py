"""live calls: call classifications, caller blocks and blocked attempts, callbacks; agent station
and skills on users

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:40:14.445722
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import callcenter.storage.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_classifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("classified_by_id", sa.Integer(), nullable=True),
        sa.Column("classified_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_call_classifications_call_id_calls")
        ),
        sa.ForeignKeyConstraint(
            ["classified_by_id"], ["users.id"], name=op.f("fk_call_classifications_classified_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_classifications")),
        sa.UniqueConstraint("call_id", name=op.f("uq_call_classifications_call_id")),
    )
    with op.batch_alter_table("call_classifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_classifications_code"), ["code"], unique=False)

    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("queue", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("attempt_open", sa.Boolean(), nullable=False),
        sa.Column("placed_by_id", sa.Integer(), nullable=True),
        sa.Column("placed_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=False),
        sa.Column("last_note", sa.String(length=1000), nullable=False),
        sa.Column("outcome_by_id", sa.Integer(), nullable=True),
        sa.Column("closed_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name=op.f("fk_callbacks_call_id_calls")),
        sa.ForeignKeyConstraint(
            ["outcome_by_id"], ["users.id"], name=op.f("fk_callbacks_outcome_by_id_users")
        ),
        sa.ForeignKeyConstraint(["placed_by_id"], ["users.id"], name=op.f("fk_callbacks_placed_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
        sa.UniqueConstraint("call_id", name=op.f("uq_callbacks_call_id")),
    )
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_callbacks_number"), ["number"], unique=False)
        batch_op.create_index(batch_op.f("ix_callbacks_status"), ["status"], unique=False)

    op.create_table(
        "caller_blocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("blocked_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("lifted_by_id", sa.Integer(), nullable=True),
        sa.Column("replaced_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["blocked_by_id"], ["users.id"], name=op.f("fk_caller_blocks_blocked_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["lifted_by_id"], ["users.id"], name=op.f("fk_caller_blocks_lifted_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["replaced_by_id"],
            ["caller_blocks.id"],
            name=op.f("fk_caller_blocks_replaced_by_id_caller_blocks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caller_blocks")),
    )
    with op.batch_alter_table("caller_blocks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caller_blocks_number"), ["number"], unique=False)

    op.create_table(
        "blocked_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("system_name", sa.String(length=40), nullable=False),
        sa.Column("linkedid", sa.String(length=80), nullable=False),
        sa.Column("at", callcenter.storage.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("block_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["block_id"], ["caller_blocks.id"], name=op.f("fk_blocked_attempts_block_id_caller_blocks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocked_attempts")),
        sa.UniqueConstraint("system_name", "linkedid", name=op.f("uq_blocked_attempts_system_name_linkedid")),
    )
    with op.batch_alter_table("blocked_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_blocked_attempts_block_id"), ["block_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_blocked_attempts_number"), ["number"], unique=False)

    # Server defaults fill the users that exist already.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("station", sa.String(length=40), server_default="", nullable=False))
        batch_op.add_column(sa.Column("skills", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("skills")
        batch_op.drop_column("station")

    with op.batch_alter_table("blocked_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blocked_attempts_number"))
        batch_op.drop_index(batch_op.f("ix_blocked_attempts_block_id"))

    op.drop_table("blocked_attempts")
    with op.batch_alter_table("caller_blocks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caller_blocks_number"))

    op.drop_table("caller_blocks")
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callbacks_status"))
        batch_op.drop_index(batch_op.f("ix_callbacks_number"))

    op.drop_table("callbacks")
    with op.batch_alter_table("call_classifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_classifications_code"))

    op.drop_table("call_classifications")
