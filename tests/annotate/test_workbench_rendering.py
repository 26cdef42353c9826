"""Markdown and HTML in the data are rendered inert; prompts are shown as conversations."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.assignment import claim_next
from annotate.rendering import render_conversation, render_markdown
from tests.factories import make_comparison

pytestmark = pytest.mark.django_db

HOSTILE = (
    "<script>window.__pwned = 1</script>\n\n"
    '<img src=x onerror="window.__pwned=2">\n\n'
    "[click](javascript:alert(1))\n\n"
    "**bold** and `code`\n\n```python\nprint('<b>hi</b>')\n```"
)


def test_raw_html_in_markdown_is_escaped_text():
    html = str(render_markdown(HOSTILE))
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert 'href="javascript:' not in html
    assert "<strong>bold</strong>" in html
    assert '<pre><code class="language-python">' in html and "&lt;b&gt;hi&lt;/b&gt;" in html


def test_prompt_renders_as_turns_with_roles():
    turns = render_conversation(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi <b>there</b>"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "And *now*?"},
        ]
    )
    assert [t.label for t in turns] == ["System", "User", "Assistant", "User"]
    assert "&lt;b&gt;" in turns[1].html and "<em>now</em>" in turns[3].html


def test_workbench_page_never_contains_raw_html_from_the_data(client, project, annotator):
    make_comparison(
        project,
        prompt=[{"role": "user", "content": "<script>alert('p')</script>"}],
        a=HOSTILE,
        b="<iframe src='https://example.org'></iframe>",
    )
    client.force_login(annotator)
    assert claim_next(project=project, user=annotator) is not None
    body = client.get(reverse("workbench", args=[project.slug])).content.decode()
    assert "<script>alert" not in body and "<script>window.__pwned" not in body
    assert "<iframe" not in body and "<img src=x" not in body
    assert "&lt;script&gt;window.__pwned" in body
