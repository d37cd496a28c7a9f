"""customs declarations keep their dated rule

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:30:00.000000

A declaration now records the dated rule it applied (its id, not just the union), that
rule's legal basis, the border date, who files it, the import VAT and the total to pay.

Backfill of declarations filed before: every one of them was assessed with the rules that
applied before rules were dated, which are exactly ``EAEU-2020-PERSONAL`` (per parcel,
EUR 200 / 31 kg, 15 %, no VAT) and ``UZ-2025-COURIER`` (USD 200 a month, 30 %). So the old
union becomes that rule's id, with its legal basis as the corridor data words it today. The
border date and who filed it were not kept: they stay NULL. No VAT was charged: ``vat`` is 0
and ``total`` is the duty.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import livecommerce.sqltypes

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_RULES = {
    'EAEU': (
        'EAEU-2020-PERSONAL',
        'EEC Council decision No. 107 of 20 December 2017 (goods for personal use), '
        'thresholds from 1 January 2020',
    ),
    'UZ': (
        'UZ-2025-COURIER',
        'Uzbekistan: international courier shipments to individuals, USD 200 per month per '
        'recipient, from 1 May 2025',
    ),
}


def upgrade() -> None:
    with op.batch_alter_table('customs_declarations', schema=None) as batch_op:
        batch_op.alter_column(
            'rule',
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=16),
            type_=sqlmodel.sql.sqltypes.AutoString(length=40),
            existing_nullable=False,
        )
        batch_op.add_column(sa.Column('customs_union', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('legal_basis', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
        batch_op.add_column(sa.Column('border_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('declared_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('vat', livecommerce.sqltypes.DecimalText(length=40), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('total', livecommerce.sqltypes.DecimalText(length=40), nullable=True))
        batch_op.add_column(sa.Column('charges', sa.JSON(), nullable=True))

    table = sa.table(
        'customs_declarations',
        sa.column('rule', sa.String),
        sa.column('customs_union', sa.String),
        sa.column('legal_basis', sa.String),
        sa.column('duty', sa.String),
        sa.column('total', sa.String),
    )
    op.execute(table.update().values(customs_union=table.c.rule, total=table.c.duty))
    for union, (rule_id, legal_basis) in LEGACY_RULES.items():
        op.execute(
            table.update()
            .where(table.c.rule == union)
            .values(rule=rule_id, legal_basis=legal_basis)
        )

    with op.batch_alter_table('customs_declarations', schema=None) as batch_op:
        batch_op.alter_column(
            'customs_union',
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=16),
            nullable=False,
        )
        batch_op.alter_column(
            'total',
            existing_type=livecommerce.sqltypes.DecimalText(length=40),
            nullable=False,
        )


def downgrade() -> None:
    table = sa.table(
        'customs_declarations',
        sa.column('rule', sa.String),
        sa.column('customs_union', sa.String),
    )
    # The union was all a declaration said of its rule before.
    op.execute(table.update().values(rule=table.c.customs_union))

    with op.batch_alter_table('customs_declarations', schema=None) as batch_op:
        batch_op.drop_column('charges')
        batch_op.drop_column('total')
        batch_op.drop_column('vat')
        batch_op.drop_column('declared_by')
        batch_op.drop_column('border_date')
        batch_op.drop_column('legal_basis')
        batch_op.drop_column('customs_union')
        batch_op.alter_column(
            'rule',
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=40),
            type_=sqlmodel.sql.sqltypes.AutoString(length=16),
            existing_nullable=False,
        )
