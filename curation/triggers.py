"""Database triggers that freeze dataset snapshots once made (DESIGN.md "Lineage").

A snapshot is made in one transaction (`curation.snapshots.create_snapshot`): its row is inserted with an
empty `content_hash`, its pairs and contested comparisons are COPYed in, and one UPDATE writes the counts and
the hash. From then on (a non-empty `content_hash`) the snapshot is frozen, and the database refuses what
would change it, whoever asks (QuerySet.update, raw SQL, another client), with an integrity error:

- UPDATE of a frozen `annotate_datasetsnapshot` row, except its `created_by_id` going to NULL (the foreign
  key's SET NULL when a login account is deleted: what erasing a person needs), and DELETE of one;
- UPDATE or DELETE of any `annotate_snapshotpair` or `curation_snapshotcontested` row (they are written only
  by the INSERTs of the snapshot's own making), and INSERT of one into a frozen snapshot (checked once a
  statement, over its new rows, so the COPY of a large snapshot pays one look-up, not one a row).

DELETE (never UPDATE) is let through in a transaction that has set `arbiter.purge_lineage` to `on`
(`SELECT set_config('arbiter.purge_lineage', 'on', true)`, see `purge_sql`): how a scratch database is
emptied (bench/export_bench.py's cleanup). Nothing in the product sets it; a client that can set it could as
well drop the triggers (a table owner can), so it adds no power, only a name for the deliberate act.

PostgreSQL's TRUNCATE (how Django flushes between transactional tests) fires no row triggers.
"""

from __future__ import annotations

PURGE_SETTING = "arbiter.purge_lineage"
# True inside a transaction that has asked to purge lineage (DELETE only).
PURGING = f"coalesce(current_setting('{PURGE_SETTING}', true), '') = 'on'"
PURGE_SQL = f"SELECT set_config('{PURGE_SETTING}', 'on', true)"

MESSAGE_SNAPSHOT = "dataset snapshot is frozen and cannot be changed or deleted"
MESSAGE_MEMBER = "rows of a dataset snapshot cannot be changed, deleted or added once it is frozen"

SNAPSHOT = "annotate_datasetsnapshot"
MEMBERS = ("annotate_snapshotpair", "curation_snapshotcontested")

INSTALL = [
    f"""
CREATE OR REPLACE FUNCTION curation_snapshot_frozen() RETURNS trigger AS $$
BEGIN
    IF OLD.content_hash = '' OR (TG_OP = 'DELETE' AND {PURGING}) THEN  -- being made, or purged
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '{MESSAGE_SNAPSHOT} (id %)', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    IF to_jsonb(NEW) - 'created_by_id' <> to_jsonb(OLD) - 'created_by_id'
       OR NOT (NEW.created_by_id IS NOT DISTINCT FROM OLD.created_by_id OR NEW.created_by_id IS NULL) THEN
        RAISE EXCEPTION '{MESSAGE_SNAPSHOT} (id %)', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
""",
    f"""
CREATE TRIGGER curation_snapshot_frozen BEFORE UPDATE OR DELETE ON {SNAPSHOT}
FOR EACH ROW EXECUTE FUNCTION curation_snapshot_frozen();
""",
    f"""
CREATE OR REPLACE FUNCTION curation_snapshot_member_fixed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND {PURGING} THEN RETURN OLD; END IF;
    RAISE EXCEPTION '{MESSAGE_MEMBER} (% of snapshot %)', TG_OP, OLD.snapshot_id
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
""",
    f"""
CREATE OR REPLACE FUNCTION curation_snapshot_member_insert() RETURNS trigger AS $$
DECLARE
    frozen bigint;
BEGIN
    SELECT s.id INTO frozen FROM {SNAPSHOT} s
    WHERE s.id IN (SELECT DISTINCT snapshot_id FROM new_rows) AND s.content_hash <> '' LIMIT 1;
    IF frozen IS NOT NULL THEN
        RAISE EXCEPTION '{MESSAGE_MEMBER} (INSERT into snapshot %)', frozen
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
""",
    *(
        sql
        for table in MEMBERS
        for sql in (
            f"""
CREATE TRIGGER {table}_fixed BEFORE UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION curation_snapshot_member_fixed();
""",
            f"""
CREATE TRIGGER {table}_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION curation_snapshot_member_insert();
""",
        )
    ),
]

UNINSTALL = [
    *(
        sql
        for table in MEMBERS
        for sql in (
            f"DROP TRIGGER IF EXISTS {table}_insert ON {table};",
            f"DROP TRIGGER IF EXISTS {table}_fixed ON {table};",
        )
    ),
    f"DROP TRIGGER IF EXISTS curation_snapshot_frozen ON {SNAPSHOT};",
    "DROP FUNCTION IF EXISTS curation_snapshot_member_insert();",
    "DROP FUNCTION IF EXISTS curation_snapshot_member_fixed();",
    "DROP FUNCTION IF EXISTS curation_snapshot_frozen();",
]
