"""rating batches, team sessions, photos' original names

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 01:10:00

Ratings stored before batches existed become batch 1 (stored by "(before batches)"), active.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    batches = op.create_table('ratingbatch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stored_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('stored_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('file_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('n_ratings', sa.Integer(), nullable=False),
    sa.Column('n_raters', sa.Integer(), nullable=False),
    sa.Column('n_people', sa.Integer(), nullable=False),
    sa.Column('scale_min', sa.Float(), nullable=False),
    sa.Column('scale_max', sa.Float(), nullable=False),
    sa.Column('ratings', sa.JSON(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ratingbatch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ratingbatch_active'), ['active'], unique=False)

    op.create_table('teamsession',
    sa.Column('token_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('token_sha256')
    )
    with op.batch_alter_table('teamsession', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_teamsession_account'), ['account'], unique=False)
        batch_op.create_index(batch_op.f('ix_teamsession_expires_at'), ['expires_at'], unique=False)

    with op.batch_alter_table('photo', schema=None) as batch_op:
        batch_op.add_column(sa.Column('original_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))

    rows = op.get_bind().execute(sa.text(
        "SELECT r.rater_id, p.person_key, r.score, r.age_group, r.gender, r.scale_min, r.scale_max "
        "FROM surveyrating r JOIN referenceperson p ON p.id = r.person_id ORDER BY r.id"
    )).all()
    if rows:
        from datetime import datetime, timezone

        op.bulk_insert(batches, [{
            'stored_by': '(before batches)', 'stored_at': datetime.now(timezone.utc), 'file_name': '(stored earlier)',
            'n_ratings': len(rows), 'n_raters': len({r[0] for r in rows}), 'n_people': len({r[1] for r in rows}),
            'scale_min': rows[0][5], 'scale_max': rows[0][6], 'active': True,
            'ratings': [[r[0], r[1], r[2], r[3], r[4]] for r in rows],
        }])


def downgrade() -> None:
    with op.batch_alter_table('photo', schema=None) as batch_op:
        batch_op.drop_column('original_name')
    with op.batch_alter_table('teamsession', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_teamsession_expires_at'))
        batch_op.drop_index(batch_op.f('ix_teamsession_account'))
    op.drop_table('teamsession')
    with op.batch_alter_table('ratingbatch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ratingbatch_active'))
    op.drop_table('ratingbatch')
