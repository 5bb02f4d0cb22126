"""who may book: organizer verification, book-in and request-in lists, delegates, working hours

New resource settings (``core.resource_settings``), each with its default for the existing
mailboxes; ``resource_delegates`` (who approves a resource's requests) and ``group_groups``
(a group as a member of another).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_COLUMNS = (
    ('mr_verify_organizer', sa.String(length=16), sa.text("'match'")),
    ('mr_book_in', sa.Text(), sa.text("'all'")),
    ('mr_request_in', sa.Text(), sa.text("'none'")),
    ('mr_allow_external', sa.Boolean(), sa.true()),
    ('mr_working_hours', sa.String(length=255), sa.text("'none'")),
    ('mr_min_duration', sa.Integer(), sa.text("0")),
    ('mr_response_text', sa.Text(), sa.text("''")),
    ('mr_approval_timeout', sa.Integer(), sa.text("168")),
    ('mr_notify_delegates', sa.Boolean(), sa.false()),
)


def _pair_table(name: str, left: tuple[str, str], right: tuple[str, str]) -> None:
    """A link table: two foreign keys (column, table), both the primary key, cascading."""
    op.create_table(
        name,
        sa.Column(left[0], sa.Integer(), nullable=False),
        sa.Column(right[0], sa.Integer(), nullable=False),
        *(sa.ForeignKeyConstraint([column], [f'{table}.id'],
                                  name=op.f(f'fk_{name}_{column}_{table}'), ondelete='CASCADE')
          for column, table in (left, right)),
        sa.PrimaryKeyConstraint(left[0], right[0], name=op.f(f'pk_{name}')))


def upgrade() -> None:
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        for name, sql_type, default in _COLUMNS:
            batch_op.add_column(sa.Column(name, sql_type, nullable=False,
                                          server_default=default))
    _pair_table('resource_delegates', ('resource_id', 'mailboxes'),
                ('delegate_id', 'mailboxes'))
    _pair_table('group_groups', ('group_id', 'groups'), ('member_id', 'groups'))


def downgrade() -> None:
    op.drop_table('group_groups')
    op.drop_table('resource_delegates')
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        for name, _type, _default in reversed(_COLUMNS):
            batch_op.drop_column(name)
