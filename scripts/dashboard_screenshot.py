"""Render docs/dashboard.png: a demo-like project (HH harmless pairs from annotate/demo, twelve simulated
annotators with different skill and speed, gold, source labels) in a throw-away SQLite database, served by
uvicorn and photographed by Debian's Chromium through Playwright.

    python scripts/dashboard_screenshot.py [--out docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TMP = Path(tempfile.mkdtemp(prefix="arbiter-shot-"))
for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
    os.environ.pop(name, None)
os.environ["ARBITER_DATA_DIR"] = str(TMP)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from annotate.canonical import split_hh_pair  # noqa: E402
from annotate.dashboard import recompute_dashboard  # noqa: E402
from annotate.models import Gold, Judgment, JudgmentRevision, Membership, Project  # noqa: E402
from tests.factories import add_judgment, crowd_annotator, make_comparison  # noqa: E402
from tests.servers import start_asgi  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def seed(project: Project, rnd: random.Random) -> None:
    with gzip.open(ROOT / "annotate/demo/hh_harmless_500.jsonl.gz", "rt") as fh:
        pairs = [json.loads(line) for line in fh][:240]
    names = ["amara", "bastien", "chen", "dalia", "emeka", "farah", "goran", "hana", "jun"]
    skill = dict(zip(names, [0.9, 0.85, 0.8, 0.8, 0.75, 0.7, 0.9, 0.65, 0.4], strict=True))
    speed = {n: rnd.uniform(25, 60) for n in names}
    speed["jun"] = 6.0  # clicks through
    people = {n: crowd_annotator(project, n) for n in names}
    source = crowd_annotator(project, "hh-rlhf")
    now = timezone.now()
    for i, row in enumerate(pairs):
        messages, chosen, rejected = split_hh_pair(row["chosen"], row["rejected"])
        flip = rnd.random() < 0.5
        a, b = (rejected, chosen) if flip else (chosen, rejected)
        try:
            c = make_comparison(project, messages, a, b)
        except Exception:  # noqa: BLE001, S112 - identical responses in the source: skip the pair
            continue
        better = 1 if flip else -1  # sign of the preference for the chosen side
        add_judgment(c, source, is_source=True, imported=True, choice="b" if flip else "a")
        is_gold = i % 20 == 0
        if is_gold:
            Gold.objects.create(comparison=c, choice="b" if flip else "a")
        voters = rnd.sample(names, 6 if is_gold else 4)
        clear = rnd.random() < 0.6
        for name in voters:
            right = rnd.random() < (skill[name] if clear else 0.5 + skill[name] / 3)
            strength = rnd.choice([1, 2, 2, 3]) if clear else rnd.choice([0, 1, 1, 2])
            pref = better * strength if right else -better * rnd.choice([0, 1, 1, 2])
            a_safe = rnd.random() < (0.85 if not flip else 0.6)
            b_safe = rnd.random() < (0.6 if not flip else 0.85)
            cats = [
                "violence,aiding_and_abetting,incitement",
                "hate_speech,offensive_language",
                "privacy_violation",
            ]
            j = add_judgment(
                c,
                people[name],
                preference=pref,
                helpfulness="a" if pref < 0 else "b" if pref > 0 else rnd.choice(["a", "b", "tie"]),
                harmlessness="a" if (pref < 0) == right else "b",
                a_safe=a_safe,
                b_safe=b_safe,
                a_harm_categories=[] if a_safe else rnd.sample(cats, 1),
                b_harm_categories=[] if b_safe else rnd.sample(cats, 1),
                shown_left=rnd.choice("ab") if name != "hana" else ("a" if pref <= 0 else "b"),
                time_spent_ms=int(rnd.lognormvariate(0, 0.4) * speed[name] * 1000),
            )
            when = now - dt.timedelta(days=13 * (1 - i / len(pairs)) + rnd.random(), hours=rnd.random() * 8)
            Judgment.objects.filter(pk=j.pk).update(created_at=when, updated_at=when)
            JudgmentRevision.objects.filter(judgment=j).update(created_at=when)


def fake_model(project: Project, rnd: random.Random) -> None:
    """An active 'reward model' whose scores follow the source labels with noise (for the margin page)."""
    from annotate.models import DatasetSnapshot, Response
    from rewardtrain.models import ModelVersion, Score, TrainingRun

    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    run = TrainingRun.objects.create(project=project, snapshot=snapshot, base_model="demo")
    model = ModelVersion.objects.create(
        run=run, project=project, path="-", snapshot_hash="0" * 64, is_active=True
    )
    chosen = {}
    for j in Judgment.objects.filter(project=project, is_source=True).select_related("comparison"):
        c = j.comparison
        chosen[c.response_a_id] = j.choice == "a"
        chosen[c.response_b_id] = j.choice == "b"
    Score.objects.bulk_create(
        Score(model_version=model, response_id=rid, value=(1.2 if good else -1.2) + rnd.gauss(0, 1.5))
        for rid, good in chosen.items()
        if Response.objects.filter(pk=rid).exists()
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs/dashboard.png"))
    parser.add_argument(
        "--margins-out", default="", help="Also photograph the margin page (with a made-up model)."
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    try:
        call_command("migrate", verbosity=0)
        project = Project.objects.create(
            name="Helpful & harmless (demo)",
            slug="demo",
            overlap_k=4,
            auto_pause_gold_threshold=0.5,
            auto_pause_min_gold=5,
        )
        researcher = User.objects.create_user("researcher", password="unused-demo-password")  # noqa: S106
        Membership.objects.create(user=researcher, project=project, role=Membership.Role.RESEARCHER)
        seed(project, random.Random(7))
        if args.margins_out:
            fake_model(project, random.Random(3))
        recompute_dashboard(project.pk)
        client = Client()
        client.force_login(researcher)
        session = client.cookies["sessionid"].value
        from django.db import connection

        env = {"SQLITE_PATH": str(connection.settings_dict["NAME"])}
        server, base_url = start_asgi(TMP, extra_env=env)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
                context.add_cookies([{"name": "sessionid", "value": session, "url": base_url}])
                page = context.new_page()
                page.goto(f"{base_url}/p/demo/dashboard/")
                page.wait_for_selector("#dashboard-figures svg")
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out, full_page=True)
                if args.margins_out:
                    page.goto(f"{base_url}/p/demo/margins/")
                    page.screenshot(path=args.margins_out, full_page=True)
                browser.close()
        finally:
            server.stop()
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
