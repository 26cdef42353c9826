"""Prepared statements for the workbench's hot statements, on Django's own connection and in its transaction.

What it replaces: nothing of Django's. The claim's and the submit's statements (annotate/assignment.py,
annotate/services.py) are our own SQL; they used to run through `connection.cursor()`, whose psycopg cursor
binds parameters on the client (Django's default), so PostgreSQL parsed and planned each of them afresh on every
request. Run here, psycopg binds them on the server and prepares each one the first time a connection runs it;
later runs send only its name and parameters.

What it buys (bench/RESULTS.md, side by side in the same minutes): PostgreSQL's CPU per claim+submit pair
falls by about half, and the submit's lock (seven tables) no longer plans on every submit.

Why no documented setting serves alone: Django's DATABASES OPTIONS `server_side_binding: True` switches a whole
alias to server-side binding, and PostgreSQL's protocol caps a server-bound statement at 65,535 parameters;
Django's cascade deletes and `__in` look-ups send one parameter per id, so a big project could no longer be
deleted (tests/test_settings_db.py). A second alias with server-side binding has its own connection, hence its
own transaction: the claim's and submit's statements would commit apart from the rubric hook's writes and the
`on_commit` callbacks that run on the default alias. psycopg's documented `Cursor` class (server-side binding)
opened on the psycopg connection Django already holds (`connection.connection`) gives server-side binding to
these statements alone, inside the caller's `transaction.atomic()`; `execute(..., prepare=True)` asks psycopg to
prepare the statement at once. psycopg prepares nothing on a connection whose `prepare_threshold` is None
(Django's default), so config/settings.py sets it in DATABASES OPTIONS; Django's own cursors keep binding on
the client and are never prepared.

Errors come through Django's wrapper (`connection.wrap_database_errors`), so callers see Django's
IntegrityError / OperationalError as with `connection.cursor()`. Not seen by Django: its query log under DEBUG
and `connection.execute_wrapper` hooks (none is installed in Arbiter).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections


def run(sql: str, params: Sequence, *, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
    """Execute one statement that returns rows (a SELECT, or a write with RETURNING) with server-side binding,
    prepared on this connection, and return its rows. `%s` placeholders, as with Django's cursors."""
    db = connections[using]
    db.validate_no_broken_transaction()  # as Django's cursors do inside a failed atomic block
    db.ensure_connection()
    with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()  # not `description`: it builds a column object for each of up to 60 columns


def columns(model, alias: str) -> str:
    """The model's concrete columns as `alias.column, …`, in `_meta.concrete_fields` order (see `load`)."""
    return ", ".join(f"{alias}.{field.column}" for field in model._meta.concrete_fields)


def load(model, row: Sequence, start: int = 0, *, using: str = DEFAULT_DB_ALIAS):
    """The model instance whose `columns(model, …)` begin at `row[start]`: each value through its field's
    `from_db_value` where it has one (JSON arrives as text, as Django's connection asks psycopg), then
    Django's `Model.from_db`."""
    db = connections[using]
    values = list(row[start : start + len(model._meta.concrete_fields)])
    for i, field in enumerate(model._meta.concrete_fields):
        if hasattr(field, "from_db_value") and values[i] is not None:
            values[i] = field.from_db_value(values[i], None, db)
    return model.from_db(using, [field.attname for field in model._meta.concrete_fields], values)


def column_names(model, names: Sequence[str]) -> str:
    """The columns of the model's fields `names` (attnames), comma-separated."""
    return ", ".join(model._meta.get_field(name).column for name in names)


def insert(model, names: Sequence[str]) -> str:
    """`INSERT INTO table (columns) VALUES (%s, …)` for the model's fields `names` (attnames); `params` makes
    the values in the same order."""
    marks = ", ".join("%s" for _ in names)
    return f"INSERT INTO {model._meta.db_table} ({column_names(model, names)}) VALUES ({marks})"


def params(model, values: dict, *, using: str = DEFAULT_DB_ALIAS) -> list:
    """The values of `values` (attname: value, in `insert`'s order) as the database takes them: each through
    its field's `get_db_prep_save` (JSON to psycopg's Jsonb, and so on)."""
    db = connections[using]
    return [model._meta.get_field(name).get_db_prep_save(value, db) for name, value in values.items()]
