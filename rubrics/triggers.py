"""Database triggers that freeze published rubric versions.

The model checks in models.py give the clear message; these make the database itself refuse what bypasses
them (QuerySet.update, bulk_create, raw SQL, another client). They raise an integrity error:

- UPDATE or DELETE of a `rubrics_rubricversion` row whose stored status is 'published' (publishing itself,
  the draft → published update, is allowed; nothing of a published row changes afterwards, notes included);
- INSERT, UPDATE or DELETE of a `rubrics_criterion` row whose (old or new) version is published.

PostgreSQL's TRUNCATE (how Django flushes between transactional tests) fires no row triggers.
"""

from __future__ import annotations

MESSAGE_VERSION = "rubric version is published and cannot be changed or deleted"
MESSAGE_CRITERION = "criterion belongs to a published rubric version and cannot be added, changed or deleted"

INSTALL = [
    f"""
CREATE OR REPLACE FUNCTION rubrics_version_frozen() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'published' THEN
        RAISE EXCEPTION '{MESSAGE_VERSION} (id %)', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
""",
    """
CREATE TRIGGER rubrics_version_frozen BEFORE UPDATE OR DELETE ON rubrics_rubricversion
FOR EACH ROW EXECUTE FUNCTION rubrics_version_frozen();
""",
    f"""
CREATE OR REPLACE FUNCTION rubrics_criterion_frozen() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND EXISTS (
        SELECT 1 FROM rubrics_rubricversion WHERE id = OLD.version_id AND status = 'published'
    ) THEN
        RAISE EXCEPTION '{MESSAGE_CRITERION} (criterion %)', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND EXISTS (
        SELECT 1 FROM rubrics_rubricversion WHERE id = NEW.version_id AND status = 'published'
    ) THEN
        RAISE EXCEPTION '{MESSAGE_CRITERION} (version %)', NEW.version_id USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
""",
    """
CREATE TRIGGER rubrics_criterion_frozen BEFORE INSERT OR UPDATE OR DELETE ON rubrics_criterion
FOR EACH ROW EXECUTE FUNCTION rubrics_criterion_frozen();
""",
]

UNINSTALL = [
    "DROP TRIGGER IF EXISTS rubrics_criterion_frozen ON rubrics_criterion;",
    "DROP TRIGGER IF EXISTS rubrics_version_frozen ON rubrics_rubricversion;",
    "DROP FUNCTION IF EXISTS rubrics_criterion_frozen();",
    "DROP FUNCTION IF EXISTS rubrics_version_frozen();",
]
