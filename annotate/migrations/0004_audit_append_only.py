"""Audit events append-only in the database (see annotate/audit_triggers.py).

On merge into main, depend on ("annotate", "0003_drop_duplicate_fk_indexes") instead of 0002.
"""

from django.db import migrations

from projects import audit_triggers


def install_triggers(apps, schema_editor):
    audit_triggers.install(schema_editor.connection)


def uninstall_triggers(apps, schema_editor):
    audit_triggers.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("annotate", "0003_drop_duplicate_fk_indexes")]

    operations = [migrations.RunPython(install_triggers, uninstall_triggers)]
