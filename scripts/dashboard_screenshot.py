"""Render docs/dashboard.png: the dashboard of the demo's HH project exactly as `make run` seeds it
(`seed_demo`: 500 HH-RLHF pairs with their source labels, simulated crowd votes, gold), in a throw-away
embedded PostgreSQL in a temporary folder, served by uvicorn and photographed by Debian's Chromium through
Playwright.

    python scripts/dashboard_screenshot.py [--out docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
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

from annotate.models import Judgment
from curation.demo import seed_demo  # noqa: E402
from insights.dashboard import recompute_dashboard
from projects.models import Project
from tests.backends import CHROMIUM_ARGS  # noqa: E402
from tests.servers import start_asgi  # noqa: E402


def fake_model(project: Project, rnd: random.Random) -> None:
    """An active 'reward model' whose scores follow the source labels with noise (for the margin page)."""
    from annotate.models import Response
    from curation.models import DatasetSnapshot
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
        seed_demo(password=secrets.token_urlsafe(12))
        project = Project.objects.get(slug="hh-demo")
        researcher = User.objects.get(username="researcher")
        if args.margins_out:
            fake_model(project, random.Random(3))
        recompute_dashboard(project.pk)
        client = Client()
        client.force_login(researcher)
        session = client.cookies["sessionid"].value
        server, base_url = start_asgi(TMP)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
                context.add_cookies([{"name": "sessionid", "value": session, "url": base_url}])
                page = context.new_page()
                page.goto(f"{base_url}/p/{project.slug}/dashboard/")
                page.wait_for_selector("#dashboard-figures svg")
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out, full_page=True)
                if args.margins_out:
                    page.goto(f"{base_url}/p/{project.slug}/margins/")
                    page.screenshot(path=args.margins_out, full_page=True)
                browser.close()
        finally:
            server.stop()
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
