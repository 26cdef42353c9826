"""Rankings in and out: `raw` rows carrying a ranking, `generic` lines of K responses in a ranking project,
the ranking form of `raw` that round-trips, and the pair formats from the pairs the rankings imply."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from annotate.assignment import available_ranking_crowd
from annotate.models import Comparison, Item, Judgment, Ranking, RankingRevision
from curation import importers
from curation.exporters import ExportError, export_snapshot
from curation.snapshots import create_snapshot
from projects.models import Project
from tests.factories import crowd_annotator

pytestmark = pytest.mark.django_db

NAMES = ("amy", "ben", "cat")


@pytest.fixture
def ranking_project(project):
    project.task_kind = Project.TaskKind.RANKING
    project.harm_categories = ["violence", "privacy_violation"]
    project.save()
    return project


def ranking_rows(n_items: int = 6, seed: int = 0) -> list[dict]:
    """Every annotator ranks every item (3–5 responses, listed in a random order per row), mostly agreeing on
    the order of the answer numbers; some ties, safety answers, and a second revision for one ranking."""
    rng = random.Random(seed)
    rows = []
    for n in range(n_items):
        k = rng.randint(3, 5)
        answers = [f"Answer {n}.{j}" for j in range(k)]
        for name in NAMES:
            listed = rng.sample(answers, k)
            order = sorted(answers, key=lambda a: answers.index(a) + rng.gauss(0, 0.6))
            tiers: list[list[int]] = []
            for answer in order:
                if tiers and rng.random() < 0.2:
                    tiers[-1].append(listed.index(answer))
                else:
                    tiers.append([listed.index(answer)])
            safety = [None] * k
            safety[0] = {"safe": True, "harm_categories": [], "severity": None}
            if rng.random() < 0.5:
                safety[1] = {"safe": False, "harm_categories": ["violence"], "severity": "minor"}
            rows.append(
                {
                    "prompt": [{"role": "user", "content": f"Question {n}?"}],
                    "responses": [{"text": a, "model": f"m{answers.index(a)}"} for a in listed],
                    "annotator": name,
                    "ranking": tiers,
                    "all_bad": n == 0,
                    "safety": safety,
                    "justification": f"{name} on {n}",
                    "time_spent_ms": 1000 + n,
                    "created_at": f"2026-01-0{1 + n % 9}T10:00:00+00:00",
                    "revision": 1,
                    "submission_id": f"{name}-{n}-1",
                }
            )
    second = dict(rows[0], ranking=list(reversed(rows[0]["ranking"])), revision=2, submission_id="amy-0-2",
                  created_at="2026-01-02T10:00:00+00:00")  # fmt: skip
    rows.append(second)
    return rows


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def ranking_multiset(project: Project) -> Counter:
    """Every ranking revision as texts: (prompt, annotator, tiers as sets of texts, all_bad, safety by text,
    justification, time, number)."""
    out: Counter = Counter()
    for rev in RankingRevision.objects.filter(ranking__project=project).select_related(
        "ranking__item", "ranking__annotator"
    ):
        texts = dict(rev.ranking.item.responses.values_list("id", "text"))
        out[
            (
                json.dumps(rev.ranking.item.prompt),
                rev.ranking.annotator.name,
                tuple(frozenset(texts[r] for r in tier) for tier in rev.tiers),
                rev.all_bad,
                tuple(sorted((texts[int(r)], json.dumps(s, sort_keys=True)) for r, s in rev.safety.items())),
                rev.justification,
                rev.time_spent_ms,
                rev.number,
                rev.submission_id,
            )
        ] += 1
    return out


def test_raw_rankings_import_with_their_implied_pairs_and_again_adds_nothing(ranking_project, tmp_path):
    rows = ranking_rows()
    path = write(tmp_path / "rankings.jsonl", rows)
    report = importers.import_file(path, project=ranking_project, fmt="raw")
    assert report.bad_lines == 0 and report.rankings_created == 6 * 3
    assert report.ranking_revisions_created == len(rows)
    assert Ranking.objects.filter(project=ranking_project).count() == 18
    for ranking in Ranking.objects.filter(project=ranking_project).prefetch_related("pair_judgments"):
        k = len(ranking.display_order)
        assert ranking.pair_judgments.count() == k * (k - 1) // 2
        assert ranking.imported and all(j.imported for j in ranking.pair_judgments.all())
    amy0 = Ranking.objects.get(
        annotator__name="amy", item__prompt=[{"role": "user", "content": "Question 0?"}]
    )
    assert amy0.revision_count == 2 and amy0.all_bad
    first = ranking_multiset(ranking_project)
    # every comparison counts the three annotators' implied votes
    assert set(
        Comparison.objects.filter(project=ranking_project).values_list("crowd_judgments", flat=True)
    ) == {3}

    again = importers.import_file(path, project=ranking_project, fmt="raw")
    assert again.rankings_created == 0 and again.ranking_revisions_created == 0
    assert again.duplicates == len(rows)
    assert ranking_multiset(ranking_project) == first


def test_raw_ranking_export_round_trips(ranking_project, tmp_path):
    rows = ranking_rows(seed=1)
    importers.import_file(write(tmp_path / "in.jsonl", rows), project=ranking_project, fmt="raw")
    snapshot = create_snapshot(project=ranking_project)
    result = export_snapshot(snapshot, tmp_path / "out.jsonl", fmt="raw", with_names=True)
    exported = [json.loads(line) for line in result.path.read_text().splitlines()]
    assert len(exported) == len(rows) == result.rows
    assert set(exported[0]) == {"prompt", "responses", "annotator", "ranking", "all_bad", "safety",
                                "justification", "time_spent_ms", "created_at", "revision", "submission_id"}  # fmt: skip

    line = exported[0]
    stored = Ranking.objects.get(project=ranking_project, annotator__name=line["annotator"],
                                 item__prompt=line["prompt"])  # fmt: skip
    texts = dict(stored.item.responses.values_list("id", "text"))
    tiers = [[texts[r] for r in tier] for tier in stored.revisions.get(number=line["revision"]).tiers]
    # Into the same project again: every row is there already (its submission id and revision).
    again = importers.import_file(result.path, project=ranking_project, fmt="raw")
    assert again.duplicates == len(rows) and again.ranking_revisions_created == 0

    # Into another project (submission ids are unique across the database, so the file is taken without them):
    # the same rankings, revisions and answers.
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps(dict(r, submission_id=None)) + "\n" for r in exported))
    other = Project.objects.create(name="copy", slug="copy", task_kind=Project.TaskKind.RANKING,
                                   harm_categories=ranking_project.harm_categories)  # fmt: skip
    importers.import_file(bare, project=other, fmt="raw")
    without_ids = Counter({key[:-1] + (None,): n for key, n in ranking_multiset(ranking_project).items()})
    assert ranking_multiset(other) == without_ids
    # and the ranking the export named first was the stored one, response by response
    assert [[line["responses"][i]["text"] for i in tier] for tier in line["ranking"]] == tiers

    with pytest.raises(ExportError, match="JSONL only"):
        export_snapshot(snapshot, tmp_path / "o.parquet", fmt="raw", parquet=True)


def test_pair_formats_come_from_the_implied_pairs(ranking_project, tmp_path):
    # Three annotators agree on a strict order of four responses: every pair's chosen is the better one.
    answers = ["best", "good", "fair", "poor"]
    rows = [
        {
            "prompt": "Rank these",
            "responses": answers[::-1],
            "annotator": name,
            "ranking": [[3], [2], [1], [0]],
        }
        for name in NAMES
    ]
    importers.import_file(write(tmp_path / "in.jsonl", rows), project=ranking_project, fmt="raw")
    snapshot = create_snapshot(project=ranking_project)
    assert snapshot.pairs.count() == 6
    for fmt in ("trl", "hh", "safe-rlhf"):
        out = export_snapshot(snapshot, tmp_path / f"{fmt}.jsonl", fmt=fmt, style="text")
        lines = [json.loads(line) for line in out.path.read_text().splitlines()]
        assert len(lines) == 6, fmt
        got = set()
        for row in lines:
            if fmt == "safe-rlhf":
                better = row[f"response_{row['better_response_id']}"]
                worse = row[f"response_{1 - row['better_response_id']}"]
            else:
                better, worse = (row["chosen"].rsplit("Assistant: ", 1)[-1].strip(),
                                 row["rejected"].rsplit("Assistant: ", 1)[-1].strip())  # fmt: skip
            got.add((better, worse))
        assert got == set(itertools.combinations(answers, 2)), fmt


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"ranking": [[0], [1]]}, "ranking", "missing"),
        ({"ranking": [[0], [1], [1, 2]]}, "ranking", "more than once"),
        ({"ranking": [[0], [1], [5]]}, "ranking", "Not a response"),
        ({"ranking": [[0], []]}, "ranking", "Tier 2"),
        ({"responses": ["x", "y"], "ranking": [[0], [1]]}, "responses", "3 to 9"),
        ({"responses": ["x", "x", "y"]}, "responses[1]", "identical"),
        ({"safety": [None]}, "safety", "3 entries"),
        ({"safety": [{"safe": True, "severity": "minor"}, None, None]}, "safety[0].severity", "no harm"),
        ({"safety": [{"safe": False, "harm_categories": ["nope"]}, None, None]}, "safety[0].harm_categories[0]",
         "unknown harm category"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"annotator": ""}, "annotator", "empty"),
    ],
)  # fmt: skip
def test_a_bad_ranking_row_names_line_and_field_and_commits_nothing(
    ranking_project, tmp_path, change, field, message
):
    good = {"prompt": "Rank", "responses": ["x", "y", "z"], "annotator": "amy", "ranking": [[2], [0, 1]]}
    rows = [good, dict(good, annotator="ben"), dict(good, **change)]
    with pytest.raises(importers.ImportFailed) as failed:
        importers.import_file(write(tmp_path / "bad.jsonl", rows), project=ranking_project, fmt="raw")
    [error] = failed.value.report.errors
    assert (error.line, error.field) == (3, field) and message in error.message
    assert not Item.objects.filter(project=ranking_project).exists()
    assert not Ranking.objects.exists() and not Judgment.objects.exists()


def test_rankings_into_a_pairs_project_are_refused(project, tmp_path):
    row = {"prompt": "Rank", "responses": ["x", "y", "z"], "annotator": "amy", "ranking": [[2], [0, 1]]}
    with pytest.raises(importers.ImportFailed) as failed:
        importers.import_file(write(tmp_path / "r.jsonl", [row]), project=project, fmt="raw")
    assert failed.value.report.errors[0].field == "ranking"
    assert "ranking project" in failed.value.report.errors[0].message


def test_generic_lines_of_k_responses_are_served_as_rankings(ranking_project, tmp_path):
    lines = [{"prompt": f"Q{n}", "responses": [f"r{n}.{j}" for j in range(4)]} for n in range(3)]
    report = importers.import_file(write(tmp_path / "g.jsonl", lines), project=ranking_project, fmt="generic")
    assert (
        report.items_created == 3 and report.comparisons_created == 3 * 6
    )  # every pair: rankings imply them
    annotator = crowd_annotator(ranking_project, "amy")
    assert available_ranking_crowd(project=ranking_project, annotator=annotator).count() == 3

    too_few = [{"prompt": "Q", "responses": ["a", "b"]}]
    with pytest.raises(importers.ImportFailed) as failed:
        importers.import_file(write(tmp_path / "few.jsonl", too_few), project=ranking_project, fmt="generic")
    error = failed.value.report.errors[0]
    assert (error.line, error.field) == (1, "responses") and "3 to 9" in error.message
    with pytest.raises(ValueError, match="every pair"):
        importers.import_file(tmp_path / "g.jsonl", project=ranking_project, fmt="generic", generic_pairs=2)


def test_a_ranking_mirrors_its_highest_revision_whatever_the_file_order(ranking_project, tmp_path):
    base = {"prompt": "Rank", "responses": ["x", "y", "z"], "annotator": "amy"}
    rows = [
        dict(base, ranking=[[2], [1], [0]], revision=2, created_at="2026-01-02T00:00:00+00:00"),
        dict(base, ranking=[[0], [1], [2]], revision=1, created_at="2026-01-01T00:00:00+00:00"),
    ]
    importers.import_file(write(tmp_path / "r.jsonl", rows), project=ranking_project, fmt="raw")
    ranking = Ranking.objects.get()
    texts = dict(ranking.item.responses.values_list("id", "text"))
    assert [[texts[r] for r in tier] for tier in ranking.tiers] == [["z"], ["y"], ["x"]]
    assert ranking.revision_count == 2 and ranking.created_at.day == 1 and ranking.updated_at.day == 2
    # the implied pairs say what revision 2 says: z over y over x
    for judgment in ranking.pair_judgments.select_related("comparison__response_a", "comparison__response_b"):
        a, b = judgment.comparison.response_a.text, judgment.comparison.response_b.text
        assert judgment.choice == ("a" if a > b else "b")


def test_a_ranking_rows_response_over_the_limit_is_named(ranking_project, tmp_path, settings):
    settings.ARBITER_IMPORT_MAX_RESPONSE_CHARS = 100
    row = {
        "prompt": "Rank",
        "responses": ["x", "y" * 101, "z"],
        "annotator": "amy",
        "ranking": [[0], [1], [2]],
    }
    with pytest.raises(importers.ImportFailed) as failed:
        importers.import_file(write(tmp_path / "big.jsonl", [row]), project=ranking_project, fmt="raw")
    [error] = failed.value.report.errors
    assert (error.line, error.field) == (
        1,
        "responses[1]",
    ) and "ARBITER_IMPORT_MAX_RESPONSE_CHARS" in error.message
    assert not Item.objects.exists()


def test_ranking_rows_import_from_parquet(ranking_project, tmp_path):
    rows = [
        {"prompt": f"Q{n}", "responses": ["x", "y", "z"], "annotator": name, "ranking": [[2], [0, 1]]}
        for n in range(3)
        for name in NAMES
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "r.parquet")
    report = importers.import_file(tmp_path / "r.parquet", project=ranking_project, fmt="raw")
    assert report.rankings_created == 9
    assert Judgment.objects.filter(ranking__isnull=False).count() == 9 * 3
