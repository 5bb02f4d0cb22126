"""approvals: requests waiting for a delegate's decision, and the secret of their tokens

``approvals`` keeps one row per request held for approval (``services.approvals``): what
the delegates were asked, until when, and what became of it (pending, accepted, declined,
expired, replaced, cancelled). ``secrets`` keeps the key the approval tokens are HMACs
with, made here once, so every worker and every command signs with the same one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
import os

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _approvals() -> None:
    op.create_table(
        'approvals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('resource_id', sa.Integer(), nullable=False),
        sa.Column('booking_id', sa.Integer(), nullable=True),
        sa.Column('uid', sa.String(length=512), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('organizer', sa.String(length=320), nullable=False),
        sa.Column('start', sa.DateTime(), nullable=False),
        sa.Column('end', sa.DateTime(), nullable=False),
        sa.Column('requested_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('nonce', sa.String(length=32), nullable=False),
        sa.Column('request_message_id', sa.String(length=998), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('decided_by', sa.String(length=320), nullable=False),
        sa.Column('comment', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['resource_id'], ['mailboxes.id'],
                                name=op.f('fk_approvals_resource_id_mailboxes'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'],
                                name=op.f('fk_approvals_booking_id_bookings'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_approvals')))
    op.create_index('ix_approvals_status_expires', 'approvals', ['status', 'expires_at'])
    op.create_index('ix_approvals_booking', 'approvals', ['booking_id'])


def _secrets() -> None:
    secrets = op.create_table(
        'secrets',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_secrets')))
    # 32 random bytes: the HMAC-SHA256 key of the approval tokens (RFC 2104 §3: a key as
    # long as the hash's output).
    op.bulk_insert(secrets, [{'name': 'approval_tokens', 'value': os.urandom(32)}])


def upgrade() -> None:
    _approvals()
    _secrets()


def downgrade() -> None:
    op.drop_table('secrets')
    op.drop_index('ix_approvals_booking', table_name='approvals')
    op.drop_index('ix_approvals_status_expires', table_name='approvals')
    op.drop_table('approvals')
