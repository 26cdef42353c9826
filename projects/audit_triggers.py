"""Database triggers that keep annotate_auditevent append-only, for PostgreSQL and SQLite.

AuditEvent.save()/delete() refuse in Python; these make the database refuse what bypasses the model
(QuerySet.update/delete, raw SQL, another client):

- DELETE of any audit row is refused;
- UPDATE is refused unless id, action, target_type, target_id and created_at are unchanged and project_id is
  unchanged or set to NULL (the FK's SET NULL). So only actor_id, actor_name and data may change: what erasing
  a person needs (annotate/erasure.py pseudonymises the name and scrubs it from data; deleting a user sets
  actor_id to NULL).

PostgreSQL's TRUNCATE (how Django flushes between transactional tests) fires no row triggers. SQLite's flush
deletes row by row, so tests/conftest.py removes the audit rows with the triggers lifted after each
transactional test on SQLite (`removable_audit_rows`).
"""

from __future__ import annotations

MESSAGE = "audit events are append-only (only actor and data may be rewritten, for erasure)"

_UNCHANGED = (
    "NEW.id IS OLD.id AND NEW.action IS OLD.action AND NEW.target_type IS OLD.target_type"
    " AND NEW.target_id IS OLD.target_id AND NEW.created_at IS OLD.created_at"
    " AND (NEW.project_id IS OLD.project_id OR NEW.project_id IS NULL)"
)

POSTGRES_INSTALL = [
    f"""
CREATE OR REPLACE FUNCTION annotate_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '{MESSAGE} (id %)', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    IF NOT ({_UNCHANGED.replace(" IS ", " IS NOT DISTINCT FROM ")}) THEN
        RAISE EXCEPTION '{MESSAGE} (id %)', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
""",
    """
CREATE TRIGGER annotate_audit_append_only BEFORE UPDATE OR DELETE ON annotate_auditevent
FOR EACH ROW EXECUTE FUNCTION annotate_audit_append_only();
""",
]

POSTGRES_UNINSTALL = [
    "DROP TRIGGER IF EXISTS annotate_audit_append_only ON annotate_auditevent;",
    "DROP FUNCTION IF EXISTS annotate_audit_append_only();",
]

SQLITE_INSTALL = [
    f"""CREATE TRIGGER annotate_audit_no_delete BEFORE DELETE ON annotate_auditevent
FOR EACH ROW BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
    f"""CREATE TRIGGER annotate_audit_no_update BEFORE UPDATE ON annotate_auditevent
FOR EACH ROW WHEN NOT ({_UNCHANGED})
BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
]

SQLITE_UNINSTALL = [
    "DROP TRIGGER IF EXISTS annotate_audit_no_delete;",
    "DROP TRIGGER IF EXISTS annotate_audit_no_update;",
]


def _statements(connection, install: bool) -> list[str]:
    if connection.vendor == "postgresql":
        return POSTGRES_INSTALL if install else POSTGRES_UNINSTALL
    if connection.vendor == "sqlite":
        return SQLITE_INSTALL if install else SQLITE_UNINSTALL
    return []


def install(connection) -> None:
    with connection.cursor() as cursor:
        for sql in _statements(connection, True):
            cursor.execute(sql)


def uninstall(connection) -> None:
    with connection.cursor() as cursor:
        for sql in _statements(connection, False):
            cursor.execute(sql)


def remove_all_rows_sqlite(connection) -> None:
    """Test teardown on SQLite only: lift the triggers, delete every audit row, put the triggers back."""
    if connection.vendor != "sqlite":
        return
    uninstall(connection)
    try:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM annotate_auditevent")
    finally:
        install(connection)
