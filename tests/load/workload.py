"""The annotators' workload shared by the load runs (`tests/load/`) and `bench/annotate_bench.py`.

A fixture project with k-overlap comparisons and annotator logins (real sessions in the database), the ASGI
server as the runs start it, CPU accounting, and the database checks that say whether a run broke the queue's
promises: no comparison over k, no annotator twice on a comparison, every acknowledged submission stored
exactly once, counters equal to the judgments.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import uuid
from pathlib import Path

import psutil

from tests.servers import ROOT, free_port, stop_popen, uvicorn_args, wait_for_port

# One valid set of answers for a project with the default questions (shown-relative: left / right).
ANSWERS = {
    "preference": -1,
    "helpfulness": "left",
    "harmlessness": "tie",
    "left_safe": "safe",
    "right_safe": "safe",
    "justification": "",
}
# What a run must keep at zero; `unacknowledged` (stored, but the client stopped before it saw the answer)
# is reported beside them: the client would have retried with the same submission id.
INVARIANTS = ("comparisons_over_k", "counter_mismatches", "duplicated", "lost", "phantom")


def setup_django(database_url: str) -> None:
    """Django for a script (not pytest): settings from the environment, the schema migrated."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("ARBITER_DATA_DIR", str(ROOT / "var" / "bench"))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def make_fixture(n_comparisons: int, n_annotators: int, k: int) -> tuple[str, list[tuple[str, str]]]:
    """A fresh project; returns its slug and (sessionid, csrf secret) per annotator."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils.crypto import get_random_string

    from annotate.models import Comparison, Item, Response
    from curation.canonical import as_messages, pair_key, prompt_key, text_key
    from projects.models import Membership, Project

    tag = uuid.uuid4().hex[:8]
    project = Project.objects.create(name=f"Bench {tag}", slug=f"bench-{tag}", overlap_k=k)
    items = Item.objects.bulk_create(
        Item(
            project=project,
            prompt=as_messages(f"Prompt {i} {tag}"),
            prompt_key=prompt_key(as_messages(f"Prompt {i} {tag}")),
        )
        for i in range(n_comparisons)
    )
    responses = Response.objects.bulk_create(
        Response(item=item, text=f"Answer {side} {item.pk}", text_key=text_key(f"Answer {side} {item.pk}"))
        for item in items
        for side in ("A", "B")
    )
    Comparison.objects.bulk_create(
        Comparison(
            project=project,
            item=items[i],
            response_a=responses[2 * i],
            response_b=responses[2 * i + 1],
            pair_key=pair_key(items[i].prompt_key, responses[2 * i].text_key, responses[2 * i + 1].text_key),
            random_key=random.random(),
        )
        for i in range(n_comparisons)
    )
    users = User.objects.bulk_create(
        User(username=f"bench-{tag}-{i}", password="!") for i in range(n_annotators)
    )
    Membership.objects.bulk_create(Membership(user=u, project=project, role="annotator") for u in users)
    sessions = []
    for user in users:
        # Exactly what django.contrib.auth.login stores; the client then holds one session for the whole run.
        store = import_module(settings.SESSION_ENGINE).SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]  # the one that checks passwords
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        sessions.append((store.session_key, get_random_string(32)))
    with connection.cursor() as cursor:  # fresh bulk-loaded tables: give the planner their statistics
        for table in ("annotate_comparison", "annotate_assignment", "annotate_judgment", "annotate_item"):
            cursor.execute(f"ANALYZE {table}")
    return project.slug, sessions


def start_uvicorn(
    env: dict[str, str], log_path: Path, *, workers: int = 2, port: int = 0, timeout: float = 60.0
) -> tuple[subprocess.Popen, str]:
    """uvicorn (`workers` processes under its supervisor) on loopback; returns the process and its URL."""
    port = port or free_port()
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            uvicorn_args(port, workers), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(port, proc, timeout)
    except (RuntimeError, TimeoutError) as exc:
        stop_popen(proc)
        raise RuntimeError(f"uvicorn did not start ({exc}):\n{log_path.read_text()[-4000:]}")
    return proc, f"http://127.0.0.1:{port}"


def start_gunicorn(
    env: dict[str, str], log_path: Path, *, workers: int = 2, threads: int = 8, port: int = 0, timeout: float = 60.0
) -> tuple[subprocess.Popen, str]:
    """gunicorn's threaded WSGI workers (config/server.py) on loopback; returns the process and its URL."""
    import sys

    from config.server import gunicorn_argv

    port = port or free_port()
    argv = gunicorn_argv(sys.executable, host="127.0.0.1", port=port, workers=workers, threads=threads)
    argv[argv.index("--log-level") + 1] = "warning"
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, timeout)
    except (RuntimeError, TimeoutError) as exc:
        stop_popen(proc)
        raise RuntimeError(f"gunicorn did not start ({exc}):\n{log_path.read_text()[-4000:]}")
    return proc, f"http://127.0.0.1:{port}"


def tree_cpu_seconds(pid: int) -> float:
    """CPU time so far of a process and its live children (0 once it is gone)."""

    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            t = proc.cpu_times()
            total += t.user + t.system
        return total
    except psutil.NoSuchProcess:
        return 0.0


def cpu_seconds(server_pid: int | None, database: str) -> dict[str, float]:
    """CPU time so far of the server (uvicorn and its workers), this database's PostgreSQL backends and this
    process (`client`)."""

    out = {"server": tree_cpu_seconds(server_pid) if server_pid else 0.0, "postgres": 0.0, "client": 0.0}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if cmd.startswith("postgres: ") and f" {database} " in cmd:
                t = proc.cpu_times()
                out["postgres"] += t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    t = psutil.Process().cpu_times()
    out["client"] = t.user + t.system
    return out


def check_database(
    slug: str, acknowledged: dict[str, int], k: int, attempted: set[str] | None = None
) -> dict[str, int]:
    """The run's outcome in the database.

    `acknowledged` maps each submission id a client saw answered 200 to the judgment id in that answer;
    `attempted` (when given) is every submission id any client sent, so a stored submission nobody sent
    (`phantom`) is caught too.
    """
    from django.db.models import Count, F, Q

    from annotate.models import Assignment, Comparison, Judgment, JudgmentRevision

    judgments = Judgment.objects.filter(project__slug=slug)
    crowd = Comparison.objects.filter(project__slug=slug).annotate(
        n=Count("judgments", filter=Q(judgments__is_gold=False))
    )
    stored: dict[str, int] = {}
    repeated = 0
    for sid, jid in JudgmentRevision.objects.filter(judgment__project__slug=slug).values_list(
        "submission_id", "judgment_id"
    ):
        repeated += sid in stored
        stored[sid] = jid
    lost = sum(1 for sid, jid in acknowledged.items() if stored.get(sid) != jid)
    acked_judgments = set(acknowledged.values())
    n_judgments = judgments.count()
    return {
        "judgments": n_judgments,
        "submitted_assignments": Assignment.objects.filter(project__slug=slug, status="submitted").count(),
        "acknowledged": len(acknowledged),
        "comparisons_over_k": crowd.filter(n__gt=k + F("extra_k")).count(),
        "counter_mismatches": crowd.exclude(crowd_judgments=F("n")).count(),
        # The same annotator twice on a comparison, or one submission stored as two revisions.
        "duplicated": judgments.values("comparison", "annotator")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
        + repeated,
        "lost": lost,
        "phantom": 0 if attempted is None else sum(1 for sid in stored if sid not in attempted),
        "unacknowledged": n_judgments - len(acked_judgments),
    }
