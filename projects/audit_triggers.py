"""Database triggers that keep annotate_auditevent append-only.

AuditEvent.save()/delete() refuse in Python; these make the database refuse what bypasses the model
(QuerySet.update/delete, raw SQL, another client):

- DELETE of any audit row is refused;
- UPDATE is refused unless id, action, target_type, target_id and created_at are unchanged and project_id is
  unchanged or set to NULL (the FK's SET NULL). So only actor_id, actor_name and data may change: what erasing
  a person needs (annotate/erasure.py pseudonymises the name and scrubs it from data; deleting a user sets
  actor_id to NULL).

PostgreSQL's TRUNCATE (how Django flushes between transactional tests) fires no row triggers.
"""

from __future__ import annotations

MESSAGE = "audit events are append-only (only actor and data may be rewritten, for erasure)"
KEPT = ("id", "action", "target_type", "target_id", "created_at")

_UNCHANGED = " AND ".join(
    [
        *(f"NEW.{column} IS NOT DISTINCT FROM OLD.{column}" for column in KEPT),
        "(NEW.project_id IS NOT DISTINCT FROM OLD.project_id OR NEW.project_id IS NULL)",
    ]
)

INSTALL = [
    f"""
CREATE OR REPLACE FUNCTION annotate_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '{MESSAGE} (id %)', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    IF NOT ({_UNCHANGED}) THEN
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

UNINSTALL = [
    "DROP TRIGGER IF EXISTS annotate_audit_append_only ON annotate_auditevent;",
    "DROP FUNCTION IF EXISTS annotate_audit_append_only();",
]
