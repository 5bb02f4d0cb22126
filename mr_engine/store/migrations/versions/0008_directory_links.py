"""directory links: the LDAP entry a local mailbox or group mirrors

``mailboxes.external_id`` and ``groups.external_id``: the directory entry's unique attribute
(``ldap_user_unique_attribute`` / ``ldap_group_unique_attribute``; a binary one such as AD's
objectGUID as hex), unique, NULL for what the ``db`` plugin keeps itself. A rename or a new
address in LDAP keeps the link, so the store, the bookings and the settings stay the user's.
``mailboxes.hidden``: left out of the listings (Kopano's kopanoHidden); it still gets mail.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_TABLES = ('mailboxes', 'groups')


def upgrade() -> None:
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hidden', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('external_id', sa.String(length=255), nullable=True))
            batch_op.create_unique_constraint(op.f(f'uq_{table}_external_id'), ['external_id'])


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f'uq_{table}_external_id'), type_='unique')
            batch_op.drop_column('external_id')
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.drop_column('hidden')
