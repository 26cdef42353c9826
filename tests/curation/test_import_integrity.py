"""Imports keep every foreign key and need no privilege beyond the tables: the integrity they keep.

The importer runs with PostgreSQL's foreign-key triggers as they are, and locks FOR KEY SHARE every stored row
its new rows point at when it finds it. These tests show that nothing dangles, that a stored item an import
refers to cannot be deleted under it, that an ordinary role (not a superuser, no grants on settings) imports,
and that a database error in a later batch ends the import with nothing committed.
"""

from __future__ import annotations

import threading

import orjson
import pytest
from django.db import OperationalError, connection, transaction

from annotate.models import Comparison, Item, Response
from curation.importers import import_file

pytestmark = pytest.mark.django_db(transaction=True)

LIMITED_ROLE = "arbiter_test_no_replica"


def write_lines(path, lines: list[dict]):
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return path


def dangling(project) -> dict[str, int]:
    """Rows of the project whose referenced rows do not exist, found by anti-joins."""
    checks = {
        "items without project": "SELECT count(*) FROM annotate_item i WHERE i.project_id = %s"
        " AND NOT EXISTS (SELECT 1 FROM annotate_project p WHERE p.id = i.project_id)",
        "responses without item": "SELECT count(*) FROM annotate_response r WHERE NOT EXISTS"
        " (SELECT 1 FROM annotate_item i WHERE i.id = r.item_id)",
        "comparisons without item or response": "SELECT count(*) FROM annotate_comparison c"
        " WHERE c.project_id = %s AND (NOT EXISTS (SELECT 1 FROM annotate_item i WHERE i.id = c.item_id)"
        " OR NOT EXISTS (SELECT 1 FROM annotate_response r WHERE r.id = c.response_a_id AND r.item_id = c.item_id)"
        " OR NOT EXISTS (SELECT 1 FROM annotate_response r WHERE r.id = c.response_b_id AND r.item_id = c.item_id))",
    }
    out = {}
    with connection.cursor() as cur:
        for name, sql in checks.items():
            cur.execute(sql, [project.pk] * sql.count("%s"))
            out[name] = cur.fetchone()[0]
    return out


def test_imports_lock_references_and_leave_nothing_dangling(project, tmp_path):
    first = write_lines(
        tmp_path / "first.jsonl",
        [{"prompt": f"Question {i}", "responses": [f"yes {i}", f"no {i}"]} for i in range(30)],
    )
    import_file(first, project=project, fmt="generic")
    # A second file adds responses and pairs to stored items, and new items: both paths of the look-up.
    second = write_lines(
        tmp_path / "second.jsonl",
        [{"prompt": f"Question {i}", "responses": [f"yes {i}", f"maybe {i}"]} for i in range(20, 40)],
    )
    report = import_file(second, project=project, fmt="generic")
    assert (report.items_created, report.responses_created, report.comparisons_created) == (10, 30, 20)
    assert Comparison.objects.filter(project=project).count() == 50
    assert dangling(project) == dict.fromkeys(dangling(project), 0)
    with connection.cursor() as cur:
        cur.execute("SHOW session_replication_role")
        assert cur.fetchone()[0] == "origin"


def test_a_stored_item_an_import_refers_to_cannot_be_deleted_until_it_commits(project, tmp_path):
    import_file(
        write_lines(tmp_path / "first.jsonl", [{"prompt": "Kept", "responses": ["one", "two"]}]),
        project=project,
        fmt="generic",
    )
    kept = Item.objects.get(project=project)
    second = write_lines(tmp_path / "second.jsonl", [{"prompt": "Kept", "responses": ["one", "three"]}])
    written, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold(fraction: float) -> None:  # called after the batch is written, before the commit
        if fraction < 1.0 or not written.is_set():
            written.set()
            release.wait(30)

    def run() -> None:
        try:
            import_file(second, project=project, fmt="generic", progress=hold)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)
        finally:
            connection.close()

    importer = threading.Thread(target=run)
    importer.start()
    try:
        assert written.wait(30), "the import never reached its first batch"
        with (
            pytest.raises(OperationalError, match="lock timeout"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute("SET LOCAL lock_timeout = '300ms'")
            cur.execute("DELETE FROM annotate_item WHERE id = %s", [kept.pk])
    finally:
        release.set()
        importer.join(60)
    assert not errors, errors
    assert Item.objects.filter(pk=kept.pk).exists()
    assert Response.objects.filter(item=kept).count() == 3
    assert Comparison.objects.filter(project=project, item=kept).count() == 2
    assert dangling(project) == dict.fromkeys(dangling(project), 0)


@pytest.fixture
def limited_role():
    """A role that may use the tables and nothing more: not a superuser, no grant to set any parameter (what
    most hosted databases give)."""
    with connection.cursor() as cur:
        cur.execute(f"DROP ROLE IF EXISTS {LIMITED_ROLE}")
        cur.execute(f"CREATE ROLE {LIMITED_ROLE} NOLOGIN")
        cur.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {LIMITED_ROLE}")
        cur.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {LIMITED_ROLE}")
        cur.execute(f"GRANT TEMPORARY ON DATABASE {connection.settings_dict['NAME']} TO {LIMITED_ROLE}")
    yield LIMITED_ROLE
    with connection.cursor() as cur:
        cur.execute("RESET ROLE")
        cur.execute(f"DROP OWNED BY {LIMITED_ROLE}")
        cur.execute(f"DROP ROLE {LIMITED_ROLE}")


def test_an_ordinary_role_imports(project, tmp_path, limited_role):
    path = write_lines(
        tmp_path / "pairs.jsonl",
        [{"prompt": f"Question {i}", "responses": [f"yes {i}", f"no {i}"]} for i in range(10)],
    )
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(f"SET LOCAL ROLE {limited_role}")
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone() == (False,)
        report = import_file(path, project=project, fmt="generic")
    assert report.comparisons_created == 10
    assert dangling(project) == dict.fromkeys(dangling(project), 0)


def test_a_database_error_in_a_later_batch_ends_the_import_cleanly(project, tmp_path, monkeypatch):
    """The writing thread fails in the middle of an import (a later batch cannot lock a stored item it refers
    to: another transaction holds it FOR UPDATE). The error reaches the caller as Django's, nothing of the
    file is committed, and the import leaves no thread behind."""
    threads_before = set(threading.enumerate())
    import curation.importers as importers

    monkeypatch.setattr(importers, "BATCH_LINES", 2)
    import_file(
        write_lines(tmp_path / "first.jsonl", [{"prompt": "Held", "responses": ["one", "two"]}]),
        project=project,
        fmt="generic",
    )
    held = Item.objects.get(project=project)
    lines = [{"prompt": f"New {i}", "responses": [f"a {i}", f"b {i}"]} for i in range(4)]
    lines += [{"prompt": "Held", "responses": ["one", "three"]}]  # the third batch
    lines += [{"prompt": f"Later {i}", "responses": [f"a {i}", f"b {i}"]} for i in range(6)]
    second = write_lines(tmp_path / "second.jsonl", lines)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute("SELECT id FROM annotate_item WHERE id = %s FOR UPDATE", [held.pk])
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30), "the other transaction never locked the item"
        with connection.cursor() as cur:
            cur.execute("SET lock_timeout = '300ms'")
        with pytest.raises(OperationalError, match="lock timeout"):
            import_file(second, project=project, fmt="generic")
    finally:
        release.set()
        holder.join(30)
        with connection.cursor() as cur:
            cur.execute("RESET lock_timeout")
    assert set(threading.enumerate()) <= threads_before
    assert list(Item.objects.filter(project=project).values_list("pk", flat=True)) == [held.pk]
    assert Comparison.objects.filter(project=project).count() == 1
    # Nothing was left half-done: the same file imports once the item is free.
    report = import_file(second, project=project, fmt="generic")
    assert (report.items_created, report.comparisons_created) == (10, 11)
