"""the served model's boxes per photo version, for model-assisted labeling

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 04:20:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('boxsuggestion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('photo_id', sa.Integer(), nullable=False),
    sa.Column('boxes_version', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('regions', sa.JSON(), nullable=True),
    sa.Column('uncertainty', sa.Float(), nullable=False),
    sa.Column('disagreement', sa.Float(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['modelversion.id'], ),
    sa.ForeignKeyConstraint(['photo_id'], ['photo.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('photo_id', 'boxes_version', 'model_version_id')
    )
    with op.batch_alter_table('boxsuggestion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_boxsuggestion_model_version_id'), ['model_version_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_boxsuggestion_photo_id'), ['photo_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('boxsuggestion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_boxsuggestion_photo_id'))
        batch_op.drop_index(batch_op.f('ix_boxsuggestion_model_version_id'))
    op.drop_table('boxsuggestion')
