"""calendar publishing: what a feed shows, its secret, and a change counter

``mr_calendar_details`` (busy, subject, full) governs what the ICS feed and the pages show
of a resource's bookings; ``calendar_token`` is the feed's optional secret;
``calendar_version`` is raised by every change of a resource's occurrences, so that a
free/busy answer can be cached until the calendar changes. Bookings keep the organizer's
name (CN) and the attendee count for the feed's ``subject`` and ``full`` levels (existing
bookings show none until their next update).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mr_calendar_details', sa.String(length=16),
                                      nullable=False, server_default='busy'))
        batch_op.add_column(sa.Column('calendar_version', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('calendar_token', sa.String(length=64), nullable=True))
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('organizer_name', sa.String(length=255), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('attendee_count', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_column('attendee_count')
        batch_op.drop_column('organizer_name')
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.drop_column('calendar_token')
        batch_op.drop_column('calendar_version')
        batch_op.drop_column('mr_calendar_details')
