"""series horizons, booked calendars, exact duplicate suppression

Bookings keep a whole VCALENDAR (``calendar``, the old ``vevents`` wrapped) and the time up
to which their occurrences are materialized (``horizon``). Existing series get the horizon
of the last occurrence they have, so the next horizon pass extends them. Message-IDs move to
``delivered_ids``, whose primary key makes duplicate suppression exact on PostgreSQL too.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_WRAP = {
    "sqlite": "'BEGIN:VCALENDAR' || char(13, 10) || 'VERSION:2.0' || char(13, 10) "
              "|| vevents || 'END:VCALENDAR' || char(13, 10)",
    "postgresql": "'BEGIN:VCALENDAR' || chr(13) || chr(10) || 'VERSION:2.0' || chr(13) "
                  "|| chr(10) || vevents || 'END:VCALENDAR' || chr(13) || chr(10)",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('calendar', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('horizon', sa.DateTime(), nullable=True))
    op.execute(f"UPDATE bookings SET calendar = {_WRAP[dialect]}")
    # A series (more than one occurrence) is materialized up to its last occurrence.
    op.execute("UPDATE bookings SET horizon = (SELECT max(o.start) FROM occurrences o "
               "WHERE o.booking_id = bookings.id) WHERE (SELECT count(*) FROM occurrences o "
               "WHERE o.booking_id = bookings.id AND o.recurrence_id IS NOT NULL) > 0")
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_column('vevents')
        batch_op.alter_column('calendar', server_default=None)
        batch_op.create_index('ix_bookings_resource_horizon', ['resource_id', 'horizon'],
                              unique=False)
    op.create_table('delivered_ids',
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=False),
    sa.Column('delivered_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_delivered_ids_store_id_stores'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('store_id', 'message_id', name=op.f('pk_delivered_ids'))
    )
    with op.batch_alter_table('delivered_ids', schema=None) as batch_op:
        batch_op.create_index('ix_delivered_ids_delivered_at', ['delivered_at'], unique=False)
    op.execute("INSERT INTO delivered_ids (store_id, message_id, delivered_at) "
               "SELECT store_id, message_id, max(received_at) FROM messages "
               "WHERE message_id IS NOT NULL GROUP BY store_id, message_id")
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_store_msgid')


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_store_msgid', ['store_id', 'message_id'],
                              unique=False)
    op.drop_table('delivered_ids')
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_index('ix_bookings_resource_horizon')
        batch_op.add_column(sa.Column('vevents', sa.Text(), nullable=False, server_default=''))
        batch_op.drop_column('horizon')
        batch_op.drop_column('calendar')
