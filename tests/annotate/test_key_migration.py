"""Annotate migration 0012 shortens the keys stored as full sha256 digests to the 128-bit keys that
`curation.canonical` computes now, so a file imported before it is still recognised after it."""

from __future__ import annotations

import hashlib
import importlib

import pytest
from django.db import connection

from annotate.models import Comparison, Item, Response
from curation import canonical
from curation.importers import import_file
from tests.curation.importing import fixture

SHORTEN = importlib.import_module("annotate.migrations.0012_keys_128_bits").SHORTEN


def full(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_full_digests(project) -> None:
    """The keys as the code before 0012 stored them: whole sha256 hex digests (64 characters)."""
    for item in Item.objects.filter(project=project):
        item.prompt_key = full(canonical.canonical_json(item.prompt))
        item.save(update_fields=["prompt_key"])
    for response in Response.objects.filter(item__project=project):
        response.text_key = full(response.text.encode("utf-8", "surrogatepass"))
        response.save(update_fields=["text_key"])
    for c in Comparison.objects.filter(project=project).select_related("item", "response_a", "response_b"):
        low, high = sorted([c.response_a.text_key, c.response_b.text_key])
        c.pair_key = full(f"{c.item.prompt_key}:{low}:{high}".encode())
        c.save(update_fields=["pair_key"])


@pytest.mark.django_db
def test_stored_full_digests_become_the_keys_computed_now_and_a_reimport_adds_nothing(project):
    first = import_file(fixture("generic_good.jsonl"), project=project, fmt="generic")
    assert first.comparisons_created == 5
    now = {
        "items": sorted(Item.objects.filter(project=project).values_list("prompt_key", flat=True)),
        "pairs": sorted(Comparison.objects.filter(project=project).values_list("pair_key", flat=True)),
    }
    assert all(len(k) == canonical.KEY_HEX for k in now["items"] + now["pairs"])
    store_full_digests(project)
    assert all(len(k) == 64 for k in Item.objects.filter(project=project).values_list("prompt_key", flat=True))

    with connection.cursor() as cursor:
        for sql in SHORTEN:
            cursor.execute(sql)

    assert sorted(Item.objects.filter(project=project).values_list("prompt_key", flat=True)) == now["items"]
    assert sorted(Comparison.objects.filter(project=project).values_list("pair_key", flat=True)) == now["pairs"]
    for r in Response.objects.filter(item__project=project):
        assert r.text_key == canonical.text_key(r.text)
    again = import_file(fixture("generic_good.jsonl"), project=project, fmt="generic")
    assert (again.items_created, again.responses_created, again.comparisons_created) == (0, 0, 0)
