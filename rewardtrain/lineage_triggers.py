"""The database's half of "a rubric reward fit is lineage": UPDATE and DELETE of a `RubricRewardFit` row raise
an integrity error (migration 0007), whatever does them (QuerySet.update, raw SQL, another client).
`RubricRewardFit.save/delete` give the clear message first. DELETE is let through in a transaction that asks to
purge lineage, as for snapshots and model versions (curation/triggers.py, rewardtrain/triggers.py). PostgreSQL's
TRUNCATE (how Django flushes between transactional tests) fires no row triggers.
"""

from __future__ import annotations

from curation.triggers import PURGING

MESSAGE = "rubric reward fit is lineage and cannot be changed or deleted"
TRIGGERS = [
    f"""
CREATE OR REPLACE FUNCTION rewardtrain_rubric_fit_immutable() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND {PURGING} THEN RETURN OLD; END IF;
    RAISE EXCEPTION '{MESSAGE} (id %)', OLD.id USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
""",
    """
CREATE TRIGGER rewardtrain_rubric_fit_immutable BEFORE UPDATE OR DELETE ON rewardtrain_rubricrewardfit
FOR EACH ROW EXECUTE FUNCTION rewardtrain_rubric_fit_immutable();
""",
]
UNTRIGGERS = [
    "DROP TRIGGER IF EXISTS rewardtrain_rubric_fit_immutable ON rewardtrain_rubricrewardfit;",
    "DROP FUNCTION IF EXISTS rewardtrain_rubric_fit_immutable();",
]
