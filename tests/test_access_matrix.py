"""Access control matrix: every URL of the project, for every persona, against owned and foreign objects.

The expected outcome of each URL is written out in EXPECTED below; a URL added to the project without an
entry there fails `test_every_url_is_classified`, so each new route has to be thought about once.

Personas (columns): anonymous, annotator (owns the assignment and the judgment), annotator2 (same project),
outsider (researcher of another project), researcher, admin. "Own" objects belong to project `hh`; "foreign"
objects belong to project `hidden`, where no persona but the admin holds a role.

Outcomes: an HTTP status, or "login" (a 302 to the login page), or "redirect" (any other 302: a POST that did
its work and went back to a page). Every request runs in a savepoint that is rolled back, so a POST by one
persona never changes what the next persona sees.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from annotate.models import Assignment, Ranking
from curation.exporters import download_token
from curation.models import DatasetSnapshot, ExportJob, ImportJob, SnapshotJob, SnapshotPair
from projects.access import ADMIN_GROUP
from projects.api_auth import create_token
from projects.models import Annotator, Membership, Project
from rewardtrain.downloads import download_token as model_download_token
from rewardtrain.models import (
    EvaluationJob,
    EvaluationSet,
    ModelComparison,
    ModelVersion,
    RubricRewardFit,
    TrainingRun,
)
from rewardtrain.rubric_fit import FitData, evaluate
from rubrics import services as rubric_services
from tests.annotate.workbench_support import SAFE_ANSWERS
from tests.factories import add_judgment, make_comparison, make_ranking_item

PERSONAS = ("anonymous", "annotator", "annotator2", "outsider", "researcher", "admin")

# URL name (namespaced where the URL has one) → (method, outcomes on own objects, outcomes on foreign objects),
# each a tuple in PERSONAS order: anonymous, annotator, annotator2, outsider, researcher, admin.
# Notes: rubrics are a shared library (any researcher, of any project, may read and copy them; annotators may
# not); only a rubric's owners change it (this one is the admin's: other researchers get 403);
# imports: researchers into (and of) their own projects, admins everywhere; people and tokens of others are
# admin-only; exports need researchers_can_export (set on `hh`);
# POST-only URLs are POSTed an empty body (400 = reached the form validation, i.e. access was granted);
# the OpenAPI schema and docs are for signed-in users (or a live token); download links are signed per user.
EXPECTED: dict[str, tuple[str, tuple, tuple]] = {
    "adjudicate": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "annotator_detail": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "annotator_flag": (
        "POST",
        ("login", 404, 404, 404, "redirect", "redirect"),
        ("login", 404, 404, 404, 404, "redirect"),
    ),
    "annotator_unpause": (
        "POST",
        ("login", 404, 404, 404, "redirect", "redirect"),
        ("login", 404, 404, 404, 404, "redirect"),
    ),
    "api:api-root": ("GET", (404, 404, 404, 404, 404, 404), (404, 404, 404, 404, 404, 404)),
    "api:get_agreement": ("GET", (401, 404, 404, 404, 202, 202), (401, 404, 404, 404, 404, 202)),
    "api:get_eval_comparison": ("GET", (401, 404, 404, 404, 200, 200), (401, 404, 404, 404, 404, 200)),
    "api:get_export": ("GET", (401, 404, 404, 404, 200, 200), (401, 404, 404, 404, 404, 200)),
    "api:get_export_file": ("GET", (401, 404, 404, 404, 200, 200), (401, 404, 404, 404, 404, 200)),
    "api:get_import": ("GET", (401, 404, 404, 404, 404, 200), (401, 404, 404, 404, 404, 200)),
    "api:get_run": ("GET", (401, 404, 404, 404, 200, 200), (401, 404, 404, 404, 404, 200)),
    "api:get_snapshot": ("GET", (401, 404, 404, 404, 200, 200), (401, 404, 404, 404, 404, 200)),
    "api:get_snapshot_job": ("GET", (401, 404, 404, 404, 200, 200), (401, 404, 404, 404, 404, 200)),
    "api:list_projects": ("GET", (401, 200, 200, 200, 200, 200), (401, 200, 200, 200, 200, 200)),
    "api:list_runs": ("GET", (401, 404, 404, 404, 200, 200), (401, 404, 404, 404, 404, 200)),
    "api:list_snapshots": ("GET", (401, 404, 404, 404, 200, 200), (401, 404, 404, 404, 404, 200)),
    "api:openapi-json": ("GET", ("login", 200, 200, 200, 200, 200), ("login", 200, 200, 200, 200, 200)),
    "api:openapi-view": ("GET", ("login", 200, 200, 200, 200, 200), ("login", 200, 200, 200, 200, 200)),
    "api:post_export": ("POST", (401, 404, 404, 404, 202, 202), (401, 404, 404, 404, 404, 202)),
    "api:post_run": ("POST", (401, 404, 404, 404, 400, 400), (401, 404, 404, 404, 404, 400)),
    "api:post_snapshot": ("POST", (401, 404, 404, 404, 202, 202), (401, 404, 404, 404, 404, 202)),
    "api:push_items": ("POST", (401, 404, 404, 404, 404, 202), (401, 404, 404, 404, 404, 202)),
    # The labelling API: a token (or the session) acts as its user's annotator; only the owner of an assignment
    # may draft, submit or skip it (valid bodies, so 404 is the access check and 200 the work done).
    # A model download link is made for one user (the link is the credential); each use re-checks the role.
    "api:model_download_link": ("GET", (401, 404, 404, 404, 200, 200), (401, 404, 404, 404, 404, 200)),
    "rewardtrain:model_download": ("GET", (404, 404, 404, 404, 200, 200), (404, 404, 404, 404, 404, 200)),
    "api:labelling_claim": ("POST", (401, 200, 200, 404, 200, 200), (401, 404, 404, 404, 404, 200)),
    "api:labelling_draft": ("POST", (401, 200, 404, 404, 404, 404), (401, 404, 404, 404, 404, 404)),
    "api:labelling_skip": ("POST", (401, 200, 404, 404, 404, 404), (401, 404, 404, 404, 404, 404)),
    "api:labelling_submit": ("POST", (401, 200, 404, 404, 404, 404), (401, 404, 404, 404, 404, 404)),
    "comparison_adjudicate": (
        "POST",
        ("login", 404, 404, 404, "redirect", "redirect"),
        ("login", 404, 404, 404, 404, "redirect"),
    ),
    "comparison_detail": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "comparison_list": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "comparisons_more": (
        "POST",
        ("login", 404, 404, 404, "redirect", "redirect"),
        ("login", 404, 404, 404, 404, "redirect"),
    ),
    "dashboard": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "dashboard_recompute": (
        "POST",
        ("login", 404, 404, 404, "redirect", "redirect"),
        ("login", 404, 404, 404, 404, "redirect"),
    ),
    "export_download": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "export_page": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "healthz": ("GET", (200, 200, 200, 200, 200, 200), (200, 200, 200, 200, 200, 200)),
    "home": ("GET", ("login", 200, 200, 200, 200, 200), ("login", 200, 200, 200, 200, 200)),
    "import_job": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "import_new": ("GET", ("login", 404, 404, 200, 200, 200), ("login", 404, 404, 200, 200, 200)),
    "login": ("GET", (200, 200, 200, 200, 200, 200), (200, 200, 200, 200, 200, 200)),
    "logout": (
        "POST",
        ("login", "login", "login", "login", "login", "login"),
        ("login", "login", "login", "login", "login", "login"),
    ),
    "margins": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "project_detail": ("GET", ("login", 200, 200, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "project_new": ("GET", ("login", 404, 404, 404, 404, 200), ("login", 404, 404, 404, 404, 200)),
    "project_settings": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "password_change": ("GET", ("login", 200, 200, 200, 200, 200), ("login", 200, 200, 200, 200, 200)),
    "project_people": ("GET", ("login", 404, 404, 404, 404, 200), ("login", 404, 404, 404, 404, 200)),
    "project_rubric": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "rewardtrain:eval_set_list": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "rewardtrain:eval_compare": ("POST", ("login", 404, 404, 404, 400, 400), ("login", 404, 404, 404, 404, 400)),
    "rewardtrain:eval_comparison": (
        "GET",
        ("login", 404, 404, 404, 200, 200),
        ("login", 404, 404, 404, 404, 200),
    ),
    "rewardtrain:evaluate_new": (
        "GET",
        ("login", 404, 404, 404, 200, 200),
        ("login", 404, 404, 404, 404, 200),
    ),
    "rewardtrain:evaluation_detail": (
        "GET",
        ("login", 404, 404, 404, 200, 200),
        ("login", 404, 404, 404, 404, 200),
    ),
    "rewardtrain:model_activate": (
        "POST",
        ("login", 404, 404, 404, "redirect", "redirect"),
        ("login", 404, 404, 404, 404, "redirect"),
    ),
    "rewardtrain:model_list": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "rewardtrain:run_cancel": (
        "POST",
        ("login", 404, 404, 404, "redirect", "redirect"),
        ("login", 404, 404, 404, 404, "redirect"),
    ),
    "rewardtrain:rubric_rewards": (
        "GET",
        ("login", 404, 404, 404, "redirect", "redirect"),  # one rubric version: straight to its page
        ("login", 404, 404, 404, 404, "redirect"),
    ),
    "rewardtrain:rubric_reward_version": (
        "GET",
        ("login", 404, 404, 404, 200, 200),
        ("login", 404, 404, 404, 404, 200),
    ),
    "rewardtrain:rubric_reward_fit_json": (
        "GET",
        ("login", 404, 404, 404, 200, 200),
        ("login", 404, 404, 404, 404, 200),
    ),
    "rewardtrain:rubric_reward_export": (  # researchers may export on `hh`
        "POST",
        ("login", 404, 404, 404, "redirect", "redirect"),
        ("login", 404, 404, 404, 404, "redirect"),
    ),
    "rewardtrain:run_detail": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "rewardtrain:run_list": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "rewardtrain:run_new": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "rubric_criterion_add": (
        "POST",
        ("login", 404, 404, 403, 403, "redirect"),
        ("login", 404, 404, 403, 403, "redirect"),
    ),
    "rubric_criterion_delete": (
        "POST",
        ("login", 404, 404, 403, 403, "redirect"),
        ("login", 404, 404, 403, 403, "redirect"),
    ),
    "rubric_criterion_edit": (
        "GET",
        ("login", 404, 404, 403, 403, "redirect"),
        ("login", 404, 404, 403, 403, "redirect"),
    ),
    "rubric_criterion_move": ("POST", ("login", 404, 404, 403, 403, 400), ("login", 404, 404, 403, 403, 400)),
    "rubric_copy": (
        "POST",
        ("login", 404, 404, "redirect", "redirect", "redirect"),
        ("login", 404, 404, "redirect", "redirect", "redirect"),
    ),
    "rubric_share": (
        "POST",
        ("login", 404, 404, 403, 403, "redirect"),
        ("login", 404, 404, 403, 403, "redirect"),
    ),
    "rubric_detail": ("GET", ("login", 404, 404, 200, 200, 200), ("login", 404, 404, 200, 200, 200)),
    "rubric_diff": ("GET", ("login", 404, 404, 200, 200, 200), ("login", 404, 404, 200, 200, 200)),
    "rubric_discard": (
        "POST",
        ("login", 404, 404, 403, 403, "redirect"),
        ("login", 404, 404, 403, 403, "redirect"),
    ),
    "rubric_export": ("GET", ("login", 404, 404, 200, 200, 200), ("login", 404, 404, 200, 200, 200)),
    "rubric_import": (
        "POST",
        ("login", 404, 404, "redirect", "redirect", "redirect"),
        ("login", 404, 404, "redirect", "redirect", "redirect"),
    ),
    "rubric_list": ("GET", ("login", 404, 404, 200, 200, 200), ("login", 404, 404, 200, 200, 200)),
    "rubric_new_draft": (
        "POST",
        ("login", 404, 404, 403, 403, "redirect"),
        ("login", 404, 404, 403, 403, "redirect"),
    ),
    "rubric_preview": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "rubric_publish": (
        "POST",
        ("login", 404, 404, 403, 403, "redirect"),
        ("login", 404, 404, 403, 403, "redirect"),
    ),
    "rubric_reorder": (
        "POST",
        ("login", 404, 404, 403, 403, "redirect"),
        ("login", 404, 404, 403, 403, "redirect"),
    ),
    "rubric_version": ("GET", ("login", 404, 404, 200, 200, 200), ("login", 404, 404, 200, 200, 200)),
    "snapshot_list": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "token_list": ("GET", ("login", 200, 200, 200, 200, 200), ("login", 200, 200, 200, 200, 200)),
    "token_revoke": (
        "POST",
        ("login", "redirect", "redirect", "redirect", "redirect", "redirect"),
        ("login", 404, 404, 404, 404, 404),
    ),
    "workbench": ("GET", ("login", 200, 200, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "workbench_controls": ("GET", ("login", 404, 404, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "workbench_draft": ("POST", ("login", 400, 404, 404, 404, 404), ("login", 404, 404, 404, 404, 404)),
    "workbench_guidelines": ("GET", ("login", 200, 200, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "workbench_history": ("GET", ("login", 200, 200, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "workbench_revise": ("GET", ("login", 200, 404, 404, 404, 404), ("login", 404, 404, 404, 404, 404)),
    "workbench_revise_ranking": (
        "GET",
        ("login", 200, 404, 404, 404, 404),
        ("login", 404, 404, 404, 404, 404),
    ),
    "workbench_skip": ("POST", ("login", 400, 404, 404, 404, 404), ("login", 404, 404, 404, 404, 404)),
    "workbench_status": ("GET", ("login", 200, 200, 404, 200, 200), ("login", 404, 404, 404, 404, 200)),
    "workbench_submit": ("POST", ("login", 400, 404, 404, 404, 404), ("login", 404, 404, 404, 404, 404)),
}

# The Django admin is covered by one rule: everything under /admin/ needs a staff login.
ADMIN_PREFIX = "admin/"


@dataclass
class World:
    users: dict[str, User | None] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    own: dict[str, object] = field(default_factory=dict)
    foreign: dict[str, object] = field(default_factory=dict)
    export_file: Path | None = None


def _user(username: str, **extra) -> User:
    return User.objects.create_user(username=username, password="x-" + secrets.token_hex(8), **extra)


def _objects(project: Project, ann_user: User, creator: User, tmp: Path, tag: str) -> dict[str, object]:
    """A comparison, an assignment and a judgment of `ann_user`, a snapshot, an export job, a training run
    with its model version, an evaluation job and an import job, all in `project`."""
    comparison = make_comparison(project, f"Prompt {tag}", f"A {tag}", f"B {tag}")
    other = make_comparison(project, f"Second prompt {tag}", f"A2 {tag}", f"B2 {tag}")
    annotator = Annotator.objects.create(project=project, name=ann_user.username, user=ann_user)
    assignment = Assignment.objects.create(
        project=project,
        comparison=other,
        annotator=annotator,
        reserved_until=timezone.now() + timedelta(hours=1),
    )
    judgment = add_judgment(comparison, annotator, preference=-2)
    judgment.assignment = Assignment.objects.create(
        project=project,
        comparison=comparison,
        annotator=annotator,
        status=Assignment.Status.SUBMITTED,
        submitted_at=timezone.now(),
    )
    judgment.save(update_fields=["assignment"])
    ranking = _ranking(project, annotator, tag)
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="", pair_count=1)
    SnapshotPair.objects.create(
        snapshot=snapshot, comparison=comparison, chosen="a", margin=1.0, votes=1, agreement=1.0
    )
    snapshot.content_hash = "0" * 64  # frozen from here on (curation/triggers.py)
    snapshot.save(update_fields=["content_hash"])
    export_path = tmp / f"export-{tag}.jsonl"
    export_path.write_text('{"prompt": "x"}\n')
    export = ExportJob.objects.create(
        project=project,
        snapshot=snapshot,
        created_by=creator,
        format="trl",
        status=ExportJob.Status.SUCCEEDED,
        path=str(export_path),
        rows=1,
        finished_at=timezone.now(),
    )
    run = TrainingRun.objects.create(
        project=project, snapshot=snapshot, base_model="tiny", created_by=creator, status="succeeded"
    )
    version = ModelVersion.objects.create(run=run, project=project, path=str(tmp), snapshot_hash="0" * 64)
    evaluation = EvaluationJob.objects.create(
        project=project, model_version=version, created_by=creator, format="trl", filename="e.jsonl", path=""
    )
    eval_set = EvaluationSet.objects.create(
        project=project, name=f"set {tag}", format="trl", filename="s.jsonl", path="", sha256="0" * 64, rows=1
    )
    eval_comparison = ModelComparison.objects.create(
        project=project, eval_set=eval_set, model_ids=[version.pk], created_by=creator
    )
    import_job = ImportJob.objects.create(
        project=project, created_by=creator, format="hh", filename="in.jsonl", path=str(tmp / "in.jsonl")
    )
    snapshot_job = SnapshotJob.objects.create(project=project, created_by=creator, snapshot=snapshot)
    fit = _rubric_reward_fit(project, snapshot, version, tag)
    return {
        "slug": project.slug,
        "comparison_id": comparison.pk,
        "assignment_id": assignment.pk,
        "judgment_id": judgment.pk,
        "ranking_id": ranking.pk,
        "annotator_id": annotator.pk,
        "snapshot_id": snapshot.pk,
        "export": export,
        "run_id": run.pk,
        "version_id": version.pk,
        "evaluation_id": evaluation.pk,
        "eval_comparison_id": eval_comparison.pk,
        "import_id": import_job.pk,
        "snapshot_job_id": snapshot_job.pk,
        "export_id": export.pk,
        "rubric_version_id": fit.rubric_version_id,
        "fit_id": fit.pk,
    }


def _ranking(project: Project, annotator: Annotator, tag: str) -> Ranking:
    """A submitted ranking of `annotator` (its item's three responses, in one order)."""
    item = make_ranking_item(project, 3, f"Rank {tag}", pairs=False)
    ids = list(item.responses.values_list("pk", flat=True))
    now = timezone.now()
    assignment = Assignment.objects.create(
        project=project,
        item=item,
        annotator=annotator,
        display_order=ids,
        status=Assignment.Status.SUBMITTED,
        submitted_at=now,
    )
    return Ranking.objects.create(
        project=project,
        item=item,
        annotator=annotator,
        assignment=assignment,
        tiers=[[rid] for rid in ids],
        display_order=ids,
        created_at=now,
        updated_at=now,
    )


def _rubric_reward_fit(
    project: Project, snapshot: DatasetSnapshot, model: ModelVersion, tag: str
) -> RubricRewardFit:
    """A published one-criterion rubric version and a rubric reward fit of it on `project` (figures of 8 pairs)."""
    rubric = rubric_services.rubric_create(name=f"Rewarded {tag}", description="")
    draft = rubric.versions.get()
    rubric_services.criterion_add(version=draft, text="Is right", category="essential", key="right")
    version = rubric_services.version_publish(version=draft, user=None)
    xa = np.array([[1.0], [0.0], [1.0], [1.0], [0.0], [1.0], [0.0], [1.0]])
    data = FitData(
        ["right"], xa, 1 - xa, np.array([1, 0, 1, 0, 0, 1, 0, 1]), np.arange(8) // 2, xa[:, 0], 1 - xa[:, 0]
    )
    results = evaluate(data, n_resamples=20, n_weight_resamples=5)
    return RubricRewardFit.objects.create(
        project=project,
        rubric_version=version,
        snapshot=snapshot,
        snapshot_hash=snapshot.content_hash,
        model_version=model,
        criterion_keys=["right"],
        weights={"right": results["weights"][0]["weight"]},
        fill=results["fill"],
        options=results["options"],
        results={
            **results,
            "counts": {"snapshot_pairs": 8, "without_answers": 0, "without_scores": 0, "used": 8},
        },
    )


@pytest.fixture(autouse=True)
def imports_dir(settings, tmp_path):
    """The admin's API push stores its upload for the import job: in the test's own folder."""
    settings.ARBITER_IMPORTS_DIR = tmp_path / "imports"


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """The fixture world, built once for the module inside a transaction rolled back at the end."""
    tmp = tmp_path_factory.mktemp("matrix")
    with django_db_blocker.unblock(), transaction.atomic():
        w = World()
        project = Project.objects.create(
            name="Helpful and harmless", slug="hh", overlap_k=3, researchers_can_export=True
        )
        elsewhere = Project.objects.create(name="Another team", slug="elsewhere")
        hidden = Project.objects.create(name="Hidden", slug="hidden")
        users = {
            "annotator": _user("ann"),
            "annotator2": _user("ann2"),
            "outsider": _user("stranger"),
            "researcher": _user("res"),
            "admin": _user("boss", is_staff=True),
        }
        Membership.objects.create(user=users["annotator"], project=project, role=Membership.Role.ANNOTATOR)
        Membership.objects.create(user=users["annotator2"], project=project, role=Membership.Role.ANNOTATOR)
        Membership.objects.create(user=users["researcher"], project=project, role=Membership.Role.RESEARCHER)
        Membership.objects.create(user=users["outsider"], project=elsewhere, role=Membership.Role.RESEARCHER)
        users["admin"].groups.add(Group.objects.get_or_create(name=ADMIN_GROUP)[0])
        hidden_user = _user("hidden-ann")
        Membership.objects.create(user=hidden_user, project=hidden, role=Membership.Role.ANNOTATOR)
        Annotator.objects.create(project=elsewhere, name="stranger", user=users["outsider"])

        rubric_version = rubric_services.rubric_create(
            name="Helpfulness", description="", user=users["admin"]
        )
        draft = rubric_version.versions.get()
        criterion = rubric_services.criterion_add(
            version=draft, text="Answers the question", category="essential"
        )
        project.rubric_version = None
        project.save()

        w.own = _objects(project, users["annotator"], users["researcher"], tmp, "own")
        w.foreign = _objects(hidden, hidden_user, hidden_user, tmp, "foreign")
        rubric_ids = {"pk": draft.rubric_id, "number": draft.number, "cid": criterion.pk}
        w.own.update(rubric_ids)
        w.foreign.update(rubric_ids)
        w.users = {"anonymous": None, **users}
        for name, user in users.items():
            w.tokens[name] = create_token(user=user, name="matrix")[1]
        tok_own = {n: create_token(user=u, name="revocable")[0].pk for n, u in users.items()}
        w.own["token_ids"] = tok_own
        w.foreign["token_ids"] = {n: create_token(user=hidden_user, name="theirs")[0].pk for n in users}
        yield w
        transaction.set_rollback(True)


def all_url_patterns(patterns=None, prefix: str = "", namespace: str | None = None):
    """(qualified name, route, pattern) for every URL of the project, the Django admin excluded."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    for p in patterns:
        if isinstance(p, URLResolver):
            route = prefix + str(p.pattern)
            if route == ADMIN_PREFIX:
                continue
            ns = p.namespace or namespace
            yield from all_url_patterns(p.url_patterns, route, ns)
        elif isinstance(p, URLPattern):
            name = f"{namespace}:{p.name}" if namespace else p.name
            yield name, prefix + str(p.pattern), p


def _has_param(route: str, name: str) -> bool:
    """Whether the route takes the parameter `name` (`<name>` or `<converter:name>`; not `<other_name>`)."""
    return f"<{name}>" in route or f":{name}>" in route


def _kwargs_for(name: str, pattern: URLPattern, objs: dict, persona: str) -> dict:
    route = str(pattern.pattern)
    wanted = {
        k
        for k in ("slug", "pk", "number", "cid", "assignment_id", "judgment_id", "ranking_id")
        if _has_param(route, k)
    }
    wanted |= {
        k
        for k in ("annotator_id", "comparison_id", "token", "token_id", "job_id", "run_id", "version_id")
        if _has_param(route, k)
    }
    wanted |= {k for k in ("snapshot_id", "rubric_version_id", "fit_id") if _has_param(route, k)}
    kwargs: dict = {}
    for k in wanted:
        if k == "job_id":
            kwargs[k] = {
                "import_job": objs["import_id"],
                "api:get_import": objs["import_id"],
                "api:get_snapshot_job": objs["snapshot_job_id"],
                "rewardtrain:evaluation_detail": objs["evaluation_id"],
                "rewardtrain:eval_comparison": objs["eval_comparison_id"],
                "api:get_eval_comparison": objs["eval_comparison_id"],
            }.get(name, objs["export_id"])
        elif k == "token":
            kwargs[k] = "x" if persona == "anonymous" else "PLACEHOLDER"
        elif k == "token_id":
            kwargs[k] = objs["token_ids"].get(persona, 1)
        else:
            kwargs[k] = objs[k]
    return kwargs


API_BODIES = {
    "api:push_items": lambda o: {"items": []},
    "api:post_snapshot": lambda o: {},
    "api:post_export": lambda o: {"snapshot": o["snapshot_id"], "format": "trl"},
    "api:post_run": lambda o: {"snapshot": o["snapshot_id"]},
    "api:labelling_submit": lambda o: {"answers": SAFE_ANSWERS, "submission_id": "matrix-1"},
    "api:labelling_draft": lambda o: {"data": {"choice": "a"}, "version": 0},
    "api:labelling_skip": lambda o: {"reason": "other", "note": "matrix"},
}


def _outcome(response) -> object:
    if response.status_code == 302:
        return "login" if response["Location"].startswith(reverse("login")) else "redirect"
    return response.status_code


def _request(world: World, name: str, pattern: URLPattern, method: str, persona: str, objs: dict):
    client = Client()
    user = world.users[persona]
    if user is not None:
        client.force_login(user)
    kwargs = _kwargs_for(name, pattern, objs, persona)
    url_query = "?format=hh" if name == "api:push_items" else ""
    if kwargs.get("token") == "PLACEHOLDER" and name == "rewardtrain:model_download":
        kwargs["token"] = model_download_token(ModelVersion.objects.get(pk=objs["version_id"]), user)
    elif kwargs.get("token") == "PLACEHOLDER":
        kwargs["token"] = download_token(objs["export"], user)
    url = reverse(name, kwargs=kwargs) + url_query
    extra = {}
    if name.startswith("api:") and persona in world.tokens:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {world.tokens[persona]}"
    with transaction.atomic():
        if method == "GET":
            response = client.get(url, **extra)
        elif name == "api:push_items":
            upload = SimpleUploadedFile("items.jsonl", b"")
            response = client.post(url, {"file": upload}, **extra)
        elif name.startswith("api:"):
            body = API_BODIES.get(name, lambda o: {})(objs)
            response = client.post(url, body, content_type="application/json", **extra)
        else:
            response = client.post(url, {}, **extra)
        transaction.set_rollback(True)
    return _outcome(response)


def test_every_url_is_classified():
    names = {name for name, _route, _p in all_url_patterns()}
    unclassified = sorted(names - set(EXPECTED))
    assert not unclassified, f"URLs without an entry in EXPECTED (classify them): {unclassified}"
    assert not set(EXPECTED) - names, (
        f"EXPECTED names URLs that no longer exist: {sorted(set(EXPECTED) - names)}"
    )


PATTERNS = {name: pattern for name, _route, pattern in all_url_patterns()}


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_url_answers_each_persona_as_classified(world, name):
    method, own, foreign = EXPECTED[name]
    pattern = PATTERNS[name]
    got_own = tuple(_request(world, name, pattern, method, p, world.own) for p in PERSONAS)
    got_foreign = tuple(_request(world, name, pattern, method, p, world.foreign) for p in PERSONAS)
    assert dict(zip(PERSONAS, got_own, strict=True)) == dict(zip(PERSONAS, own, strict=True)), "own objects"
    assert dict(zip(PERSONAS, got_foreign, strict=True)) == dict(zip(PERSONAS, foreign, strict=True)), (
        "foreign objects"
    )


@pytest.mark.django_db
def test_django_admin_needs_a_staff_login_and_model_permissions(world):
    """The one rule for everything under /admin/: non-staff are sent to the admin login; staff without model
    permissions (the "admins" group carries none) see only the index; superusers see the model pages."""
    urls = ("/admin/annotate/judgment/", f"/admin/annotate/judgment/{world.own['judgment_id']}/change/")
    for persona in ("anonymous", "annotator", "researcher", "outsider"):
        client = Client()
        if world.users[persona] is not None:
            client.force_login(world.users[persona])
        for url in ("/admin/", *urls):
            response = client.get(url)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), (
                persona,
                url,
            )
    client = Client(raise_request_exception=False)
    client.force_login(world.users["admin"])
    assert client.get("/admin/").status_code == 200
    assert [client.get(url).status_code for url in urls] == [403, 403]
    root = User.objects.create_superuser("root", password="x-" + secrets.token_hex(8))
    client.force_login(root)
    assert [client.get(url).status_code for url in urls] == [200, 200]


@pytest.mark.django_db
def test_csrf_is_enforced_on_a_state_changing_post(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["annotator"])
    url = reverse("api:labelling_claim", kwargs={"slug": "hh"})
    assert client.post(url).status_code == 403
    client.get(reverse("workbench", kwargs={"slug": "hh"}))
    token = client.cookies["csrftoken"].value
    assert client.post(url, HTTP_X_CSRFTOKEN=token).status_code == 200
