"""pools and seats: rooms' seats, enforcing them, proposing a free time, groups as pools,
the pool a booking came through, and the features taken from a user

New resource settings (``core.resource_settings``: ``resource_seats``, ``mr_enforce_seats``,
``mr_propose_time``) with their defaults for the existing mailboxes; ``groups.mr_pool`` (a
resource collection: a request to it books one free member); ``bookings.pool_id`` (the pool
a member's booking was delegated from, RFC 5546 §3.2.2.3); ``mailboxes.disabled_features``
(Kopano's per-user disabled features, beside the enabled ones in ``features``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_MAILBOX_COLUMNS = (
    ('resource_seats', sa.Integer(), sa.text("0")),
    ('mr_enforce_seats', sa.Boolean(), sa.false()),
    ('mr_propose_time', sa.Boolean(), sa.true()),
    ('disabled_features', sa.Text(), sa.text("''")),
)


def upgrade() -> None:
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        for name, sql_type, default in _MAILBOX_COLUMNS:
            batch_op.add_column(sa.Column(name, sql_type, nullable=False,
                                          server_default=default))
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mr_pool', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pool_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(op.f('fk_bookings_pool_id_groups'), 'groups',
                                    ['pool_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index(op.f('ix_bookings_pool_id'), ['pool_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_index(op.f('ix_bookings_pool_id'))
        batch_op.drop_constraint(op.f('fk_bookings_pool_id_groups'), type_='foreignkey')
        batch_op.drop_column('pool_id')
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.drop_column('mr_pool')
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        for name, _type, _default in reversed(_MAILBOX_COLUMNS):
            batch_op.drop_column(name)
