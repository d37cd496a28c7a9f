"""host invitations: a host consents before streaming for a merchant

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 14:36:25.365714

- ``host_invitations``: a merchant's invitation to an email, until a host account with that
  email accepts or declines it. Kept by email whether or not the account exists, so that
  inviting tells the merchant nothing about who has an account.
- ``merchant_hosts.accepted_at``: a row of ``merchant_hosts`` is now a host's accepted
  invitation. Links made before this revision were made without asking the host; they are
  kept as accepted (backfilled with ``accepted_at = created_at``), so no running stream
  loses its host on upgrade. A merchant who did not have the host's consent can remove the
  link (``DELETE /api/v1/merchants/me/hosts/{id}``), and the host can leave
  (``DELETE /api/v1/hosts/me/merchants/{id}``). Going down drops pending invitations.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import livecommerce.sqltypes

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'host_invitations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('merchant_id', sa.Integer(), nullable=False),
        sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column('created_at', livecommerce.sqltypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('merchant_id', 'email'),
    )
    with op.batch_alter_table('host_invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_host_invitations_email'), ['email'], unique=False)

    with op.batch_alter_table('merchant_hosts', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'accepted_at', livecommerce.sqltypes.UTCDateTime(timezone=True), nullable=True
            )
        )
    op.execute("UPDATE merchant_hosts SET accepted_at = created_at")
    with op.batch_alter_table('merchant_hosts', schema=None) as batch_op:
        batch_op.alter_column(
            'accepted_at',
            existing_type=livecommerce.sqltypes.UTCDateTime(timezone=True),
            nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('merchant_hosts', schema=None) as batch_op:
        batch_op.drop_column('accepted_at')

    with op.batch_alter_table('host_invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_host_invitations_email'))

    op.drop_table('host_invitations')
