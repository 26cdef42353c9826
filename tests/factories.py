"""Small builders for tests: real rows, made the way the importer makes them."""

from __future__ import annotations

import random

from django.utils import timezone

from annotate.models import Comparison, Item, Judgment, JudgmentRevision, Response
from curation.canonical import as_messages, pair_key, prompt_key, text_key
from projects.models import Annotator, Project


def make_comparison(
    project: Project,
    prompt="Say hello",
    a: str = "Hello!",
    b: str = "Go away.",
    model_a: str = "",
    model_b: str = "",
) -> Comparison:
    messages = as_messages(prompt)
    pk = prompt_key(messages)
    item, _ = Item.objects.get_or_create(project=project, prompt_key=pk, defaults={"prompt": messages})
    ra, _ = Response.objects.get_or_create(
        item=item, text_key=text_key(a), defaults={"text": a, "model_name": model_a}
    )
    rb, _ = Response.objects.get_or_create(
        item=item, text_key=text_key(b), defaults={"text": b, "model_name": model_b}
    )
    return _pair(item, ra, rb)


def _pair(item: Item, ra: Response, rb: Response) -> Comparison:
    return Comparison.objects.create(
        project=item.project,
        item=item,
        response_a=ra,
        response_b=rb,
        pair_key=pair_key(item.prompt_key, ra.text_key, rb.text_key),
        random_key=random.random(),
    )


def make_comparisons(project: Project, n: int) -> list[Comparison]:
    return [make_comparison(project, f"Prompt {i}", f"Answer A{i}", f"Answer B{i}") for i in range(n)]


def crowd_annotator(project: Project, name: str, user=None) -> Annotator:
    return Annotator.objects.get_or_create(project=project, name=name, defaults={"user": user})[0]


def add_judgment(
    comparison: Comparison,
    annotator: Annotator,
    *,
    imported: bool = False,
    is_source: bool = False,
    **answers,
) -> Judgment:
    """A submitted judgment with one revision; `answers` are Answers fields (choice derived from preference)."""
    pref = answers.get("preference")
    if "choice" not in answers and pref is not None:
        answers["choice"] = "a" if pref < 0 else "b" if pref > 0 else "tie"
    now = timezone.now()
    judgment = Judgment.objects.create(
        project=comparison.project,
        comparison=comparison,
        annotator=annotator,
        imported=imported,
        is_source=is_source,
        created_at=now,
        updated_at=now,
        **answers,
    )
    JudgmentRevision.objects.create(judgment=judgment, number=1, created_at=now, **answers)
    return judgment


def two_pair_snapshot(project: Project):
    """A snapshot of two crowd-labelled comparisons (one judgment each): the smallest thing to export or train."""
    from curation.snapshots import create_snapshot

    ann = crowd_annotator(project, "x")
    add_judgment(make_comparison(project, "p1", "a1", "b1"), ann, preference=-2)
    add_judgment(make_comparison(project, "p2", "a2", "b2"), ann, preference=1)
    return create_snapshot(project=project)


def make_ranking_item(project: Project, k: int = 4, prompt: str = "Rank us", *, pairs: bool = True) -> Item:
    """An item with `k` responses and, with `pairs`, a comparison for each pair (as a generic import makes)."""
    messages = as_messages(prompt)
    pk = prompt_key(messages)
    item = Item.objects.create(project=project, prompt_key=pk, prompt=messages)
    texts = [f"{prompt}: answer {i}" for i in range(k)]
    responses = [Response.objects.create(item=item, text=t, text_key=text_key(t)) for t in texts]
    if pairs:
        for i, ra in enumerate(responses):
            for rb in responses[i + 1 :]:
                _pair(item, ra, rb)
    return item
