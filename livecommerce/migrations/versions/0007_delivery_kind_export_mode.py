"""delivery kind on orders, export mode on shipments and declarations

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 11:45:00.000000

- ``orders.delivery``: how the parcel reaches the buyer, ``courier`` or ``postal``. The
  carrier's kind decides which customs allowance applies (Uzbekistan: USD 200 a month for
  courier shipments, USD 100 for postal items). Every order placed before was delivered by
  courier, so the default backfills them.
- ``customs_allowances.rule`` now holds the rule's id rather than its union, since
  Uzbekistan's courier and postal rules count apart. Every allowance raised before was
  raised under ``UZ-2025-COURIER`` (the only monthly rule there was), so ``UZ`` becomes it.
- ``shipments.export_mode`` and ``customs_declarations.export_mode``: the Chinese export
  customs mode the parcel's stock left China under (``9810``: export to an overseas
  warehouse). Shipments and declarations made before it was kept stay NULL: the mode was
  never recorded for them, and guessing it would put a wrong fact on a customs record.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    allowances = sa.table('customs_allowances', sa.column('rule', sa.String))
    op.execute(allowances.update().where(allowances.c.rule == 'UZ').values(rule='UZ-2025-COURIER'))
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'delivery',
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default='courier',
            )
        )
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('export_mode', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
    with op.batch_alter_table('customs_declarations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('export_mode', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))


def downgrade() -> None:
    allowances = sa.table('customs_allowances', sa.column('rule', sa.String))
    op.execute(allowances.update().where(allowances.c.rule == 'UZ-2025-COURIER').values(rule='UZ'))
    with op.batch_alter_table('customs_declarations', schema=None) as batch_op:
        batch_op.drop_column('export_mode')
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.drop_column('export_mode')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('delivery')
