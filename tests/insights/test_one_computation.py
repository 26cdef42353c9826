"""Every surface shows the same agreement figures: `manage.py agreement --json`, the dashboard, the JSON API
and the dataset card of a snapshot, on one project with gold comparisons (Gold rows), source labels and
pairs imported in both orders (flipped). The figures also equal the reference implementations computed from
the imported file's rows alone (krippendorff, irrCAC, scikit-learn) to 1e-9.
"""

from __future__ import annotations

import io
import json
import random
import re

import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from sklearn.metrics import cohen_kappa_score

from annotate.models import Comparison, Gold, Judgment
from curation import importers
from curation.exporters import card_path_for, export_snapshot
from curation.snapshots import create_snapshot
from insights.dashboard import recompute_dashboard
from insights.metrics import METRICS
from projects.api_auth import create_token
from projects.models import Annotator
from tests.factories import add_judgment, crowd_annotator
from tests.insights.test_agreement_command import ref_alpha, ref_cac, ref_percent

pytestmark = pytest.mark.django_db

TOL = 1e-9
NAMES = ("amy", "ben", "cat", "dan", "eve")
CATS = ["violence", "privacy_violation"]
N_PROMPTS = 60
GOLD_PROMPTS = range(52, 60)


@pytest.fixture(autouse=True)
def clean_cache():
    cache.clear()
    yield
    cache.clear()


def raw_rows(seed=5):
    """Votes with a strict majority side on every prompt (so a snapshot keeps every comparison), 3-5 raters
    per prompt, missing answers, and about a third of the rows naming the pair in the other order."""
    rnd = random.Random(seed)
    rows = []
    for i in range(N_PROMPTS):
        truth = rnd.choice((-1, 1))
        raters = rnd.sample(NAMES, rnd.randint(3, len(NAMES)))
        prefs = [
            truth * rnd.randint(1, 3) if rnd.random() < 0.7 else rnd.choice([-2, -1, 0, 1, 2]) for _ in raters
        ]
        prefs[0] = truth * rnd.randint(1, 3)
        while sum(np.sign(p) == truth for p in prefs) <= sum(np.sign(p) == -truth for p in prefs):
            prefs[prefs.index(next(p for p in prefs if np.sign(p) == -truth))] = truth
        for name, pref in zip(raters, prefs, strict=True):
            flipped = rnd.random() < 0.35
            unsafe = [rnd.random() < 0.2, rnd.random() < 0.3]
            row = {
                "prompt": f"Question number {i}?",
                "response_a": f"Answer {i} two" if flipped else f"Answer {i} one",
                "response_b": f"Answer {i} one" if flipped else f"Answer {i} two",
                "annotator": name,
                "preference": None if rnd.random() < 0.1 else (-pref if flipped else pref),
                "helpfulness": None if rnd.random() < 0.2 else rnd.choice(["a", "b", "tie"]),
                "a_safe": not unsafe[1 if flipped else 0],
                "b_safe": not unsafe[0 if flipped else 1],
            }
            if row["preference"] is None:
                row["choice"] = {-1: "a", 1: "b"}[int(np.sign(-pref if flipped else pref)) or 1]
            for side in "ab":
                if not row[f"{side}_safe"]:
                    row[f"{side}_harm_categories"] = rnd.sample(CATS, rnd.randint(1, 2))
            rows.append((i, name, flipped, row))
    return rows


@pytest.fixture
def imported(project, tmp_path):
    project.harm_categories = CATS
    project.save()
    rows = raw_rows()
    path = tmp_path / "votes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for *_, r in rows))
    importers.import_file(path, project=project, fmt="raw")
    by_prompt = {
        int(re.search(r"Question number (\d+)\?", json.dumps(c.item.prompt)).group(1)): c
        for c in Comparison.objects.filter(project=project).select_related("item")
    }
    assert len(by_prompt) == N_PROMPTS
    for i in GOLD_PROMPTS:  # gold comparisons: the crowd votes on them stay out of agreement
        Gold.objects.create(comparison=by_prompt[i], choice="a")
    # A stale is_gold mark on a comparison without a Gold row does not make it gold (DESIGN.md: a gold
    # comparison is one with a Gold row); a comparison with a Gold row is gold whatever the judgment says.
    Judgment.objects.filter(comparison=by_prompt[0]).update(is_gold=True)
    Judgment.objects.filter(comparison=by_prompt[GOLD_PROMPTS[0]]).update(is_gold=False)
    source = crowd_annotator(project, "hh-source")
    votes = canonical(rows)
    for i in range(
        N_PROMPTS
    ):  # one source label per comparison, never a crowd vote: the crowd's side, or a tie
        choices = [v["choice"] for v in votes[i].values()]
        side = "a" if choices.count("a") > choices.count("b") else "b"
        add_judgment(
            by_prompt[i], source, is_source=True, imported=True, choice="tie" if i % 4 == 1 else side
        )
    return project, rows, by_prompt


# --- the figures from the file's rows alone -----------------------------------------------------------


def canonical(rows):
    """Per prompt and annotator the answers relative to the canonical order (the first row's order)."""
    first = {}
    for i, _, flipped, _ in rows:
        first.setdefault(i, flipped)
    out = {}
    for i, name, flipped, row in rows:
        rel = flipped != first[i]
        pref = row["preference"]
        pref = None if pref is None else (-pref if rel else pref)
        if pref is not None:
            choice = "a" if pref < 0 else "b" if pref > 0 else "tie"
        else:
            choice = {"a": "b", "b": "a"}.get(row["choice"]) if rel else row["choice"]
        helpful = row["helpfulness"]
        if rel and helpful in ("a", "b"):
            helpful = {"a": "b", "b": "a"}[helpful]
        sides = ("b", "a") if rel else ("a", "b")
        out.setdefault(i, {})[name] = {
            "choice": choice,
            "preference": pref,
            "helpfulness": helpful,
            "unsafe": [int(not row[f"{s}_safe"]) for s in sides],
            "cats": [set(row.get(f"{s}_harm_categories", [])) for s in sides],
        }
    return out


def reference_tables(rows, prompts=None, without=()):
    """Question -> (units x raters table as {unit: {rater: code}}, value domain), crowd votes outside gold
    (on `prompts` only, less the annotators `without`, when given)."""
    votes = {i: {n: v for n, v in row.items() if n not in without} for i, row in canonical(rows).items()}
    prompts = [i for i in (prompts or range(N_PROMPTS)) if i not in GOLD_PROMPTS]
    code = {"a": 0, "tie": 1, "b": 2}
    tabs = {
        "overall": ({i: {n: code[v["choice"]] for n, v in votes[i].items()} for i in prompts}, [0, 1, 2]),
        "preference": (
            {
                i: {n: v["preference"] + 3 for n, v in votes[i].items() if v["preference"] is not None}
                for i in prompts
            },
            list(range(7)),
        ),
        "helpfulness": (
            {
                i: {n: code[v["helpfulness"]] for n, v in votes[i].items() if v["helpfulness"]}
                for i in prompts
            },
            [0, 1, 2],
        ),
        "safety": (
            {(i, s): {n: v["unsafe"][s] for n, v in votes[i].items()} for i in prompts for s in (0, 1)},
            [0, 1],
        ),
    }
    for cat in CATS:
        tabs[f"harm:{cat}"] = (
            {
                (i, s): {n: int(cat in v["cats"][s]) for n, v in votes[i].items()}
                for i in prompts
                for s in (0, 1)
            },
            [0, 1],
        )
    return tabs


def cac(tab, domain, method, weights="identity"):
    value = ref_cac(tab, domain, method, weights)
    assert value is not None
    return value


def assert_reference_figures(figures, rows):
    questions = figures["questions"]
    for name, (tab, domain) in reference_tables(rows).items():
        q = questions[name]
        want = {
            "percent_agreement": ref_percent(tab),
            "alpha_nominal": ref_alpha(tab, domain, "nominal"),
            "fleiss_kappa": cac(tab, domain, "fleiss"),
            "gwet_ac1": cac(tab, domain, "gwet"),
        }
        if name == "preference":
            for level in ("ordinal", "interval"):
                want[f"alpha_{level}"] = ref_alpha(tab, domain, level)
            want["gwet_ac2"] = cac(tab, domain, "gwet", "quadratic")
        for metric, value in want.items():
            assert q[metric] is not None and value is not None and abs(q[metric] - value) < TOL, (
                name,
                metric,
                q[metric],
                value,
            )
    overall, _ = reference_tables(rows)["overall"]
    pref, _ = reference_tables(rows)["preference"]
    for pair in figures["pairs"]:
        a, b = pair["a"], pair["b"]
        for key, n_key, tab, labels, weights in (
            ("cohen_kappa", "n", overall, [0, 1, 2], None),
            ("weighted_kappa", "weighted_n", pref, list(range(7)), "quadratic"),
        ):
            shared = [row for row in tab.values() if a in row and b in row]
            if len(shared) < 20:
                assert pair[key] is None and pair[n_key] == 0
                continue
            want = cohen_kappa_score(
                [r[a] for r in shared], [r[b] for r in shared], labels=labels, weights=weights
            )
            assert pair[n_key] == len(shared) and abs(pair[key] - want) < TOL, (a, b, key)
    assert any(p["weighted_kappa"] is not None for p in figures["pairs"])


# --- the surfaces -----------------------------------------------------------------------------------


def command_figures(project):
    out = io.StringIO()
    call_command("agreement", "--project", project.slug, "--json", stdout=out)
    return json.loads(out.getvalue())


def api_get(user, slug):
    key = create_token(user=user, name="figures")[1]
    return Client().get(f"/api/projects/{slug}/agreement", headers={"Authorization": f"Bearer {key}"})


def card_rows(text):
    """The card's agreement table: question -> its cells."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[0] not in ("question", "---"):
            out[cells[0]] = cells
    return out


def fmt(value, ci):
    return "—" if value is None else f"{value:.3f}" + (f" ({ci[0]:.3f} to {ci[1]:.3f})" if ci else "")


def test_command_dashboard_api_and_card_show_the_same_figures_equal_to_the_references(
    imported, researcher, tmp_path
):
    project, rows, _ = imported
    command = command_figures(project)
    assert command["comparisons"] == N_PROMPTS - len(GOLD_PROMPTS)
    assert command["judgments"] == sum(1 for i, *_ in rows if i not in GOLD_PROMPTS)
    assert set(command["questions"]) == {"overall", "preference", "helpfulness", "harmlessness", "safety"} | {
        f"harm:{c}" for c in CATS
    }
    assert_reference_figures(command, rows)
    source = command["source_vs_crowd"]
    assert source["n"] == N_PROMPTS - len(GOLD_PROMPTS)  # not the gold comparisons' labels
    assert source["agreement"] == pytest.approx(39 / 52)  # a source tie is a miss: 13 of them

    # The API never computes in the request: before the dashboard has figures it schedules them (202).
    pending = api_get(researcher, project.slug)
    assert pending.status_code == 202 and pending.json()["status"] == "computing"

    dashboard = recompute_dashboard(project.pk)
    # The recompute also flags the raters whose gold accuracy is low (stored on the annotator, so every surface
    # shows it): the command run after it reads the same state and equals it digit for digit, intervals included.
    command = command_figures(project)
    assert {r["annotator"] for r in command["per_annotator"] if r["flagged"]} == {"ben", "cat", "dan", "eve"}
    assert dashboard["agreement"] == command

    response = api_get(researcher, project.slug)
    assert response.status_code == 200
    api = response.json()
    assert api.pop("project") == project.slug and api.pop("computed_at") == dashboard["computed_at"]
    assert api == json.loads(json.dumps(command))

    page = Client()
    page.force_login(researcher)
    html = page.get(reverse("dashboard", args=[project.slug])).content.decode()
    for name, q in command["questions"].items():
        assert f'<th scope="row">{name}</th>' in html
        for metric in ("alpha_nominal", "fleiss_kappa", "gwet_ac1"):
            if q[metric] is not None:
                assert f"<strong>{q[metric]:.3f}</strong>" in html, (name, metric)

    # The card of a snapshot of every comparison: the same computation on the same comparisons.
    snapshot = create_snapshot(project=project)
    assert snapshot.pairs.count() == N_PROMPTS  # every comparison has a consensus; gold ones their gold label
    result = export_snapshot(snapshot, tmp_path / "out.jsonl", fmt="raw")
    card = card_path_for(result.path).read_text()
    table = card_rows(card)
    assert set(table) == set(command["questions"])
    for name, q in command["questions"].items():
        assert table[name][1] == str(q["ratings"])
        assert table[name][3:] == [fmt(q[m], q["ci"][m]) for m in METRICS], name
    assert re.search(r"1,000 resamples, seed 0", card)

    from curation.dataset_card import agreement_figures

    # The card describes the snapshot's votes: not the raters' rows, nor how the queue chose the assignments.
    project_only = ("per_annotator", "chosen_by")
    assert agreement_figures(snapshot) == {k: v for k, v in command.items() if k not in project_only}


def test_the_card_leaves_out_what_the_snapshot_excludes_and_equals_the_references_on_the_rest(imported):
    project, rows, by_prompt = imported
    Annotator.objects.filter(project=project, name="dan").update(flagged=True)
    snapshot = create_snapshot(project=project, exclude="flagged", min_agreement=0.7)
    from curation.dataset_card import agreement_figures

    figures = agreement_figures(snapshot)
    kept = set(snapshot.pairs.values_list("comparison_id", flat=True))
    assert len(kept) < N_PROMPTS  # min_agreement left some comparisons out
    crowd = Judgment.objects.filter(
        comparison_id__in=kept, is_source=False, comparison__gold__isnull=True, annotator__flagged=False
    )
    assert figures["judgments"] == crowd.count() > 0
    assert "dan" not in {p["a"] for p in figures["pairs"]} | {p["b"] for p in figures["pairs"]}
    # The references on exactly those votes (the file's rows, less dan's, on the kept comparisons).
    prompt_of = {c.pk: i for i, c in by_prompt.items()}
    kept_prompts = {prompt_of[c] for c in kept}
    for name, (tab, domain) in reference_tables(rows, sorted(kept_prompts), without={"dan"}).items():
        q = figures["questions"][name]
        assert abs(q["fleiss_kappa"] - cac(tab, domain, "fleiss")) < TOL, name
        assert abs(q["gwet_ac1"] - cac(tab, domain, "gwet")) < TOL, name
        assert abs(q["percent_agreement"] - ref_percent(tab)) < TOL, name
