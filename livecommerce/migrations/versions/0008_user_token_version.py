"""token version on users, for revocable access tokens

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:15:00.000000

- ``users.token_version``: carried in every access token (``ver``); signing out bumps it
  and every token issued before is refused. Existing users start at 0, the version tokens
  issued before this revision are read as, so nobody is signed out by the upgrade.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('token_version', sa.Integer(), nullable=False, server_default='0')
        )


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('token_version')
