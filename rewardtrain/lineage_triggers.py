"""The database's half of "a rubric reward fit is lineage" and "an evaluation set is frozen": UPDATE and DELETE of
a `RubricRewardFit` row (migration 0007) or an `EvaluationSet` row (migration 0009) raise an integrity error,
whatever does them (QuerySet.update, raw SQL, another client). The models' save/delete give the clear message
first. DELETE is let through in a transaction that asks to purge lineage, as for snapshots and model versions
(curation/triggers.py, rewardtrain/triggers.py). PostgreSQL's TRUNCATE (how Django flushes between transactional
tests) fires no row triggers.
"""

from __future__ import annotations

from curation.triggers import PURGING


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
