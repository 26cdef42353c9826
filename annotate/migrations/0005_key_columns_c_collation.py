"""The sha256 hex key columns compare bytewise (COLLATE "C").

The keys are ASCII hex digests, so every collation orders them the same way, but a libc collation (the
database default, C.UTF-8 or en_US.UTF-8) makes each comparison inside their unique B-tree indexes a strcoll()
call; "C" is a memcmp. Those indexes take one entry per imported item, response and comparison, so this is a
measurable share of an import's server time (bench/import_bench.py). The model fields keep no db_collation
(this migration sets it in the database only).
"""

from django.db import migrations

COLUMNS = (
    ("annotate_item", "prompt_key"),
    ("annotate_response", "text_key"),
    ("annotate_comparison", "pair_key"),
)


class Migration(migrations.Migration):
    dependencies = [("annotate", "0004_audit_append_only")]

    operations = [
        migrations.RunSQL(
            [f'ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar(64) COLLATE "C"' for table, column in COLUMNS],
            [
                f'ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar(64) COLLATE pg_catalog."default"'
                for table, column in COLUMNS
            ],
        )
    ]
