"""Database triggers that freeze a model's lineage (DESIGN.md "Lineage").

Once written, a model version and the figures of the run that made it are facts about a file on disk and the
snapshot it was trained on; the database refuses what would change them (QuerySet.update, raw SQL, another
client), with an integrity error:

- UPDATE of a `rewardtrain_modelversion` row that changes anything but `is_active` (activation is the one
  thing that moves), and DELETE of one;
- UPDATE of a succeeded `rewardtrain_trainingrun` row that changes its lineage (project, snapshot, objective,
  base model, config, metrics, output folder, status) and DELETE of one. Its progress, heartbeat and
  `created_by` (SET NULL when a login is deleted) may still be written.

DELETE is let through in a transaction that asks to purge lineage, as for snapshots (curation/triggers.py).

PostgreSQL's TRUNCATE (how Django flushes between transactional tests) fires no row triggers.
"""

from __future__ import annotations

from curation.triggers import PURGING

MESSAGE_VERSION = "model version is part of a lineage and cannot be changed (but for is_active) or deleted"
MESSAGE_RUN = "the lineage and metrics of a succeeded training run cannot be changed, nor the run deleted"
RUN_LINEAGE = (
    "project_id",
    "snapshot_id",
    "objective",
    "base_model",
    "config",
    "metrics",
    "output_dir",
    "status",
)

_RUN_SAME = " AND ".join(f"NEW.{column} IS NOT DISTINCT FROM OLD.{column}" for column in RUN_LINEAGE)

INSTALL = [
    f"""
CREATE OR REPLACE FUNCTION rewardtrain_version_frozen() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND {PURGING} THEN RETURN OLD; END IF;
    IF TG_OP = 'DELETE' OR to_jsonb(NEW) - 'is_active' <> to_jsonb(OLD) - 'is_active' THEN
        RAISE EXCEPTION '{MESSAGE_VERSION} (id %)', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
""",
    """
CREATE TRIGGER rewardtrain_version_frozen BEFORE UPDATE OR DELETE ON rewardtrain_modelversion
FOR EACH ROW EXECUTE FUNCTION rewardtrain_version_frozen();
""",
    f"""
CREATE OR REPLACE FUNCTION rewardtrain_run_frozen() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND {PURGING} THEN RETURN OLD; END IF;
    IF OLD.status = 'succeeded' AND (TG_OP = 'DELETE' OR NOT ({_RUN_SAME})) THEN
        RAISE EXCEPTION '{MESSAGE_RUN} (id %)', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
""",
    """
CREATE TRIGGER rewardtrain_run_frozen BEFORE UPDATE OR DELETE ON rewardtrain_trainingrun
FOR EACH ROW EXECUTE FUNCTION rewardtrain_run_frozen();
""",
]

UNINSTALL = [
    "DROP TRIGGER IF EXISTS rewardtrain_run_frozen ON rewardtrain_trainingrun;",
    "DROP TRIGGER IF EXISTS rewardtrain_version_frozen ON rewardtrain_modelversion;",
    "DROP FUNCTION IF EXISTS rewardtrain_run_frozen();",
    "DROP FUNCTION IF EXISTS rewardtrain_version_frozen();",
]
