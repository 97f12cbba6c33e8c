"""training runs as jobs: requested settings, worker, devices, start time, cancel flag

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 01:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('modelversion', schema=None) as batch_op:
        batch_op.add_column(sa.Column('job', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        batch_op.add_column(sa.Column('devices', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_modelversion_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('modelversion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_modelversion_status'))
        batch_op.drop_column('cancel_requested')
        batch_op.drop_column('started_at')
        batch_op.drop_column('devices')
        batch_op.drop_column('worker')
        batch_op.drop_column('requested_by')
        batch_op.drop_column('job')
