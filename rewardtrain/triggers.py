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

Rows that never change once written refuse every UPDATE and DELETE but a purge's (`immutable`): a rubric reward
fit (migration 0007) and an evaluation set (migration 0009). The models' save/delete give the clear message first.

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


def immutable(table: str, function: str, message: str) -> tuple[list[str], list[str]]:
    """(install, uninstall) SQL of a trigger that refuses every UPDATE and DELETE of `table` but a purge's."""
    install = [
        f"""
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND {PURGING} THEN RETURN OLD; END IF;
    RAISE EXCEPTION '{message} (id %)', OLD.id USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
""",
        f"""
CREATE TRIGGER {function} BEFORE UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION {function}();
""",
    ]
    uninstall = [f"DROP TRIGGER IF EXISTS {function} ON {table};", f"DROP FUNCTION IF EXISTS {function}();"]
    return install, uninstall


MESSAGE = "rubric reward fit is lineage and cannot be changed or deleted"
TRIGGERS, UNTRIGGERS = immutable("rewardtrain_rubricrewardfit", "rewardtrain_rubric_fit_immutable", MESSAGE)

SET_MESSAGE = "evaluation set is frozen and cannot be changed or deleted"
SET_TRIGGERS, SET_UNTRIGGERS = immutable(
    "rewardtrain_evaluationset", "rewardtrain_evaluation_set_immutable", SET_MESSAGE
)
