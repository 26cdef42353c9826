"""The admins' people page: invite, create a login with a one-time password, set roles, deactivate."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from projects.access import get_project_for_user
from projects.models import AuditEvent, Membership
from tests.conftest import login, make_user


def _url(project):
    return reverse("project_people", args=[project.slug])


@pytest.mark.django_db
def test_admin_invites_an_existing_user_as_researcher(client, project, admin_user):
    make_user("newbie")
    login(client, admin_user)
    response = client.post(_url(project), {"action": "invite", "username": "newbie", "role": "researcher"})
    assert response.status_code == 302
    m = Membership.objects.get(user__username="newbie", project=project)
    assert (m.role, m.is_active) == ("researcher", True)
    event = AuditEvent.objects.get(action="membership.invited")
    assert (event.actor, event.project, event.data["user"]) == (admin_user, project, "newbie")
    assert "newbie" in client.get(_url(project)).content.decode()


@pytest.mark.django_db
def test_admin_creates_a_login_whose_one_time_password_is_shown_once_and_works(client, project, admin_user):
    login(client, admin_user)
    response = client.post(
        _url(project), {"action": "invite", "username": "fresh", "role": "annotator", "create": "on"}
    )
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    html = response.content.decode()
    assert 'id="one-time-password"' in html
    password = html.split("<pre><code>", 1)[1].split("</code></pre>", 1)[0]
    user = User.objects.get(username="fresh")
    assert user.check_password(password)
    assert "one-time-password" not in client.get(_url(project)).content.decode()
    assert AuditEvent.objects.filter(action="user.created").count() == 1
    assert get_project_for_user(user, project.slug) == (project, "annotator")


@pytest.mark.django_db
def test_inviting_an_unknown_user_says_so_and_changes_nothing(client, project, admin_user):
    login(client, admin_user)
    response = client.post(_url(project), {"action": "invite", "username": "ghost", "role": "annotator"})
    assert response.status_code == 200
    assert "no user named &#x27;ghost&#x27;" in response.content.decode()
    assert not Membership.objects.filter(user__username="ghost").exists()
    assert not AuditEvent.objects.filter(action__startswith="membership.").exists()


@pytest.mark.django_db
def test_admin_changes_a_role_and_deactivates_a_member(client, project, admin_user, annotator):
    m = Membership.objects.get(user=annotator, project=project)
    login(client, admin_user)
    client.post(_url(project), {"action": "role", "membership": m.pk, "role": "researcher"})
    m.refresh_from_db()
    assert m.role == "researcher"
    client.post(_url(project), {"action": "deactivate", "membership": m.pk})
    m.refresh_from_db()
    assert not m.is_active
    actions = list(AuditEvent.objects.order_by("created_at", "pk").values_list("action", "data__old_role"))
    assert actions == [("membership.role_changed", "annotator"), ("membership.deactivated", None)]
    # A deactivated member no longer reaches the project.
    client.force_login(annotator)
    assert client.get(reverse("project_detail", args=[project.slug])).status_code == 404


@pytest.mark.django_db
def test_people_page_is_404_for_non_admins(client, project, other_project, annotator, researcher, outsider):
    for user in (annotator, researcher, outsider):
        login(client, user)
        assert client.get(_url(project)).status_code == 404
        assert (
            client.post(_url(project), {"action": "invite", "username": "x", "role": "annotator"}).status_code
            == 404
        )
    client.logout()
    assert client.get(_url(project))["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_a_membership_of_another_project_cannot_be_changed_from_this_page(
    client, project, outsider, admin_user
):
    theirs = Membership.objects.get(user=outsider)
    login(client, admin_user)
    response = client.post(_url(project), {"action": "deactivate", "membership": theirs.pk})
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.is_active


@pytest.mark.django_db
def test_admin_marks_a_model_judge_which_labels_outside_k_and_a_labelled_annotator_stays_as_it_is(
    client, project, admin_user, annotator, annotator2
):
    from django.core.management import CommandError, call_command

    from annotate.assignment import claim_next
    from annotate.models import Comparison
    from annotate.services import submit_judgment
    from projects.models import Annotator
    from tests.annotate.workbench_support import SAFE_ANSWERS
    from tests.factories import make_comparisons

    (comparison,) = make_comparisons(project, 1)
    m = Membership.objects.get(user=annotator, project=project)
    login(client, admin_user)
    client.post(_url(project), {"action": "model_judge", "membership": m.pk})
    judge = Annotator.objects.get(project=project, user=annotator)
    assert judge.kind == "model"
    assert "model judge" in client.get(_url(project)).content.decode()
    event = AuditEvent.objects.get(action="membership.annotator_kind")
    assert (event.data["old_kind"], event.data["kind"]) == ("crowd", "model")

    a = claim_next(project=project, user=annotator)
    submit_judgment(assignment=a, user=annotator, answers=SAFE_ANSWERS, submission_id="j1")
    comparison.refresh_from_db()
    assert comparison.crowd_judgments == 0  # a model judge's judgment is outside k
    # Once it has judgments, its kind stays: k was counted under it.
    client.post(_url(project), {"action": "human", "membership": m.pk})
    judge.refresh_from_db()
    assert judge.kind == "model"
    with pytest.raises(CommandError, match="has judgments on this project already"):
        call_command("model_judge", project.slug, annotator.username, "--human")
    # The command marks another member, who has not labelled yet.
    call_command("model_judge", project.slug, annotator2.username)
    assert Annotator.objects.get(project=project, user=annotator2).kind == "model"
    call_command("model_judge", project.slug, annotator2.username, "--human")
    assert Annotator.objects.get(project=project, user=annotator2).kind == "crowd"
    assert Comparison.objects.get().crowd_judgments == 0
