"""mr_process and features: Kopano's --mr-process (book and file, no reply) and the
features a user has (kopano-cli --add-feature / --remove-feature)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mr_process', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('features', sa.Text(), nullable=False,
                                      server_default=sa.text("''")))


def downgrade() -> None:
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.drop_column('features')
        batch_op.drop_column('mr_process')
