"""Audit events append-only in the database (see annotate/audit_triggers.py).

On merge into main, depend on ("annotate", "0003_drop_duplicate_fk_indexes") instead of 0002.
"""

from django.db import migrations

from projects import audit_triggers


class Migration(migrations.Migration):
    dependencies = [("annotate", "0003_drop_duplicate_fk_indexes")]

    operations = [migrations.RunSQL(audit_triggers.INSTALL, audit_triggers.UNINSTALL)]
