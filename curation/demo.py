"""The demo: two projects of real comparisons, four logins, and simulated crowd votes to look at.

Idempotent: running it again changes nothing that is already there.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orjson
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction

from annotate.models import Comparison, Gold, Judgment
from curation.importers import import_file
from projects.access import ADMIN_GROUP
from projects.models import Membership, Project

DEMO_DIR = Path(__file__).resolve().parent / "demo"
HH_FILE = DEMO_DIR / "hh_harmless_500.jsonl.gz"
BENIGN_FILE = DEMO_DIR / "benign_generic.jsonl"
SIMULATED_RATERS = [f"simulated-rater-{i}" for i in range(1, 7)]


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str


def demo_logins(password: str) -> list[DemoLogin]:
    return [
        DemoLogin("admin", password, "admin (all projects, people, imports, exports)"),
        DemoLogin("researcher", password, "researcher on both demo projects"),
        DemoLogin("annotator1", password, "annotator on both demo projects"),
        DemoLogin("annotator2", password, "annotator on both demo projects"),
    ]


def _user(login: DemoLogin) -> User:
    user, created = User.objects.get_or_create(
        username=login.username, defaults={"email": f"{login.username}@demo.local"}
    )
    if created:
        user.set_password(login.password)
        user.save()
    return user


class DemoRefused(RuntimeError):
    pass


def seed_demo(*, password: str, simulated_votes: int = 240, seed: int = 0) -> list[DemoLogin]:
    if settings.PRODUCTION:
        raise DemoRefused("production mode (ARBITER_PRODUCTION=1) never creates the demo's logins or data")
    logins = demo_logins(password)
    admin, researcher, ann1, ann2 = (_user(login) for login in logins)
    admins, _ = Group.objects.get_or_create(name=ADMIN_GROUP)
    admin.groups.add(admins)
    if not admin.is_staff or not admin.is_superuser:
        admin.is_staff = admin.is_superuser = True
        admin.save(update_fields=["is_staff", "is_superuser"])

    hh, hh_created = Project.objects.get_or_create(
        slug="hh-demo",
        defaults={
            "name": "HH harmless (demo)",
            "description": "500 real red-team comparisons from Anthropic HH-RLHF (MIT). Votes by simulated-rater-* are simulated for the demo.",
            "guidelines": _HH_GUIDELINES,
            "blur_content": True,
            "content_warning": "Red-team conversations: responses may contain offensive or harmful content.",
            "gold_share": 0.05,
            "overlap_k": 3,
            "show_gold_feedback": True,
        },
    )
    coding, coding_created = Project.objects.get_or_create(
        slug="coding-demo",
        defaults={
            "name": "Helpful answers (demo)",
            "description": "A few benign prompts with two or three responses each.",
            "guidelines": _BENIGN_GUIDELINES,
            "overlap_k": 2,
        },
    )
    for project in (hh, coding):
        Membership.objects.get_or_create(user=researcher, project=project, defaults={"role": "researcher"})
        for user in (ann1, ann2):
            Membership.objects.get_or_create(user=user, project=project, defaults={"role": "annotator"})

    if hh_created or not hh.comparisons.exists():
        import_file(HH_FILE, project=hh, fmt="hh", source="anthropic-hh", skip_invalid=True, actor=admin)
        _simulate_votes(hh, n_comparisons=simulated_votes, seed=seed, actor=admin)
        _mark_gold(hh, n=12, seed=seed)
    if coding_created or not coding.comparisons.exists():
        import_file(BENIGN_FILE, project=coding, fmt="generic", actor=admin)
    return logins


def _simulate_votes(project: Project, *, n_comparisons: int, seed: int, actor: User) -> None:
    """Crowd votes from simulated raters, written as a `raw` file and imported like any other.

    Each rater agrees with the source label with a rater-specific probability, so the dashboards have
    realistic, imperfect agreement to show. Rater 6 is deliberately careless (near chance).
    """
    rng = random.Random(seed)
    source = {
        j.comparison_id: j.choice
        for j in Judgment.objects.filter(project=project, is_source=True).only("comparison_id", "choice")
    }
    comparisons = list(
        Comparison.objects.filter(project=project)
        .select_related("item", "response_a", "response_b")
        .order_by("id")
    )[:n_comparisons]
    reliability = dict(zip(SIMULATED_RATERS, [0.85, 0.8, 0.78, 0.75, 0.72, 0.5], strict=True))
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as fh:
        for comparison in comparisons:
            truth = source.get(comparison.pk, "a")
            for rater in rng.sample(SIMULATED_RATERS, 3):
                agree = rng.random() < reliability[rater]
                side = truth if agree else ("b" if truth == "a" else "a")
                strength = rng.choice([1, 1, 2, 2, 3])
                preference = -strength if side == "a" else strength
                if rng.random() < 0.08:
                    preference = 0
                unsafe_side = "b" if side == "a" else "a"
                row = {
                    "prompt": comparison.item.prompt,
                    "response_a": comparison.response_a.text,
                    "response_b": comparison.response_b.text,
                    "annotator": rater,
                    "preference": preference,
                    "helpfulness": side if rng.random() < 0.8 else "tie",
                    "harmlessness": side,
                    f"{side}_safe": True,
                    f"{unsafe_side}_safe": rng.random() < 0.4,
                    "justification": "",
                    "shown_left": rng.choice(["a", "b"]),
                    "time_spent_ms": int(rng.lognormvariate(10.3, 0.5)),
                }
                if row[f"{unsafe_side}_safe"] is False:
                    row[f"{unsafe_side}_harm_categories"] = [rng.choice(project.harm_categories)]
                    row[f"{unsafe_side}_severity"] = rng.choice(["minor", "moderate", "severe"])
                fh.write(orjson.dumps(row) + b"\n")
        path = fh.name
    try:
        import_file(path, project=project, fmt="raw", actor=actor)
    finally:
        Path(path).unlink(missing_ok=True)


@transaction.atomic
def _mark_gold(project: Project, *, n: int, seed: int) -> None:
    """Gold from the source label: half on comparisons the simulated raters voted on (so the dashboard's gold
    accuracy has figures from the start), half on comparisons nobody has labelled yet (for the live logins)."""
    rng = random.Random(seed + 1)
    labelled = Judgment.objects.filter(project=project, is_source=True).order_by("comparison_id")
    voted = list(labelled.filter(comparison__crowd_judgments__gt=0).values_list("comparison_id", "choice"))
    fresh = list(labelled.filter(comparison__crowd_judgments=0).values_list("comparison_id", "choice"))
    picked = rng.sample(voted, min(n // 2, len(voted))) + rng.sample(fresh, min(n - n // 2, len(fresh)))
    for comparison_id, choice in picked:
        Gold.objects.get_or_create(
            comparison_id=comparison_id, defaults={"choice": choice, "origin": Gold.Origin.SOURCE}
        )


_HH_GUIDELINES = """\
# Guidelines

You will see one conversation and two possible final assistant responses.

1. **Overall**: which response is better, and by how much (1–7).
2. **More helpful** and **more harmless** are separate questions: a response can be more helpful yet less harmless.
3. For each response, mark it **unsafe** if it could cause harm, then pick the harm categories and a severity.
4. Write a short justification when the choice is not obvious.

The content is red-team data and may be disturbing: responses stay blurred until you reveal them (`r`).
"""

_BENIGN_GUIDELINES = """\
# Guidelines

Prefer the response that is **correct**, **complete** and **clear**, in that order.
Code must run as written. Length is not a virtue by itself.
"""
