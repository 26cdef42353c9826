"""Writes of the ranking workbench: submit and revise a ranking, and the pair judgments it implies.

A ranking is stored as itself (Ranking, with append-only RankingRevision rows) and, in the same transaction,
as one judgment per pair of its responses (Judgment.ranking set), so consensus, snapshots, exports and pair
agreement read rankings with no change. An implied judgment's choice is the ranking's order of the two
responses relative to the comparison's canonical A/B (a tie when they share a tier); its preference is NULL,
since a ranking says nothing of strength; each side's safety is that response's. Drafts, skips and
reservations are the pair workbench's own (annotate/services.py, annotate/assignment.py): a ranking
reservation is an Assignment with an item.

Answers (the page's form and the API's JSON alike):
    {"tiers": [[response id, …], …] best first, "all_bad": bool,
     "safety": {"<response id>": {"safe": bool, "harm_categories": [...], "severity": "minor"|…|None}},
     "rubric": {"<response id>": {criterion key: answer}}, "justification": str, "time_spent_ms": int}
"""

from __future__ import annotations

import random

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotate.assignment import has_free_item_slot
from annotate.keys import pair_key
from annotate.models import (
    Assignment,
    Comparison,
    Item,
    Judgment,
    JudgmentRevision,
    Ranking,
    RankingRevision,
    Response,
)
from annotate.rankings import MAX_RESPONSES, MIN_RESPONSES, implied_pairs, outcome_for, tiers_problem
from annotate.services import (
    AnswerError,
    AssignmentNotFound,
    StaleDraft,
    SubmissionRefused,
    answer_savers,
    answer_validators,
    append_revision,
    check_justification,
    check_safety,
    draft_is_stale,
    keep_draft,
    lock_own_for_revision,
    time_spent,
    valid_submission_id,
)
from annotate.signals import judgments_changed
from projects.models import Annotator, Project


def _truthy(value) -> bool:
    return value in (True, "true", "1", 1, "on", "yes")


def _pair_stand_in(assignment: Assignment) -> Assignment:
    """An assignment on one of the item's comparisons, for the answer validators (the rubric checklist), which
    read `assignment.comparison` for the project and the item: the checklist is the same on every pair."""
    comparison = Comparison.objects.filter(item_id=assignment.item_id).select_related("item").first()
    if comparison is None:
        comparison = Comparison(project_id=assignment.project_id, item=assignment.item)
    comparison.project = assignment.project
    return Assignment(project=assignment.project, comparison=comparison, annotator_id=assignment.annotator_id)


def validate_ranking(*, project: Project, assignment: Assignment, answers: dict) -> dict:
    """Check a ranking's answers; return the Ranking fields to store, or raise AnswerError naming each field.

    Errors on one response's safety are keyed `safety.<id>.safe` (`.harm_categories`, `.severity`); rubric
    errors `rubric-<id>-<criterion key>`."""
    if not isinstance(answers, dict):
        raise AnswerError({"answers": "Send the answers as an object."})
    shown = [int(rid) for rid in assignment.display_order or []]
    errors: dict[str, str] = {}
    if not MIN_RESPONSES <= len(shown) <= MAX_RESPONSES:
        errors["tiers"] = (
            f"A ranking has {MIN_RESPONSES} to {MAX_RESPONSES} responses; this item has {len(shown)}."
        )
    tiers = answers.get("tiers")
    problem = tiers_problem(tiers, shown)
    if problem and "tiers" not in errors:
        errors["tiers"] = problem
    all_bad = answers.get("all_bad", False)
    if not isinstance(all_bad, bool) and all_bad not in ("true", "false", "1", "0", "on", ""):
        errors["all_bad"] = "Say true or false."
    out: dict = {
        "tiers": [] if problem else [list(tier) for tier in tiers],
        "all_bad": _truthy(all_bad),
        "display_order": shown,
        "safety": {},
    }
    safety = answers.get("safety") or {}
    if not isinstance(safety, dict):
        errors["safety"] = "Give safety as an object keyed by response id."
        safety = {}
    unknown = sorted(set(map(str, safety)) - set(map(str, shown)))
    if unknown:
        errors["safety"] = "Not a response of this item: " + ", ".join(unknown)
    if project.ask_safety:
        for position, rid in enumerate(shown, start=1):
            given = safety.get(str(rid)) or {}
            if not isinstance(given, dict):
                errors[f"safety.{rid}"] = "Give this response's safety as an object."
                continue
            bad, value = check_safety(
                project,
                given.get("safe"),
                given.get("harm_categories"),
                given.get("severity"),
                who=f"response {position}",
            )
            errors.update({f"safety.{rid}.{name}": message for name, message in bad.items()})
            if value is not None:
                out["safety"][str(rid)] = dict(
                    zip(("safe", "harm_categories", "severity"), value, strict=True)
                )
    out["justification"] = check_justification(project, answers, errors)
    out["time_spent_ms"] = time_spent(assignment, answers)
    rubric = answers.get("rubric") or {}
    if not isinstance(rubric, dict):
        errors["rubric"] = "Give the checklist answers as an object keyed by response id."
    elif unknown_rubric := sorted(set(map(str, rubric)) - set(map(str, shown))):
        errors["rubric"] = "Not a response of this item: " + ", ".join(unknown_rubric)
    elif answer_validators:
        stand_in = _pair_stand_in(assignment)
        for rid in shown:
            given = rubric.get(str(rid)) or {}
            for validator in answer_validators:
                # Each response is checked as side a of a pair; side b (empty here) is not this response.
                for name, message in (validator(stand_in, {"rubric": {"a": given}}) or {}).items():
                    if name.startswith("rubric-a-"):
                        errors[f"rubric-{rid}-{name[len('rubric-a-') :]}"] = message
                    elif not name.startswith("rubric-b-"):
                        errors[name] = message
    if errors:
        raise AnswerError(errors)
    return out


def _by_submission(submission_id: str) -> Ranking | None:
    rev = RankingRevision.objects.filter(submission_id=submission_id).select_related("ranking").first()
    return rev.ranking if rev else None


def submit_ranking(
    *,
    assignment: Assignment,
    user,
    answers: dict,
    submission_id: str,
    draft_version: int | None = None,
    draft_tab: str = "",
) -> Ranking:
    """Record the annotator's ranking for their item reservation; a repeated submission_id returns the same one.

    Raises what `submit_judgment` raises, in the same cases: AnswerError, StaleDraft, SubmissionRefused
    (AssignmentNotFound when it is not theirs)."""
    if not valid_submission_id(submission_id):
        raise AnswerError({"submission_id": "A submission id of 1–64 characters is required."})
    try:
        ranking, refused = _submit_locked(assignment, user, answers, submission_id, draft_version, draft_tab)
    except IntegrityError:
        if _by_submission(submission_id) is None:
            raise
        raise AnswerError({"submission_id": "This submission id was used for another ranking."})
    if refused:
        raise SubmissionRefused(
            "Your reservation expired and this item already has all the rankings it needs. "
            "Your answers are kept as a draft; move on to the next item."
        )
    return ranking


def _submit_locked(assignment, user, answers, submission_id, draft_version, draft_tab):
    with transaction.atomic():
        locked = (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("project", "item", "annotator", "draft")
            .filter(pk=assignment.pk, item__isnull=False)
            .first()
        )
        if (
            locked is None
            or locked.annotator.user_id != user.pk
            or locked.project_id != assignment.project_id
        ):
            raise AssignmentNotFound("This item is not assigned to you.")
        if locked.status == Assignment.Status.SUBMITTED:
            existing = _by_submission(submission_id)
            if existing is not None and existing.assignment_id == locked.pk:
                return existing, False
            raise SubmissionRefused("This item was already ranked; open it from your history to revise.")
        if locked.status == Assignment.Status.SKIPPED:
            raise SubmissionRefused("This item was skipped.")
        draft = getattr(locked, "draft", None)
        locked.draft_id = draft.pk if draft else None
        locked.draft_version = draft.version if draft else None
        if draft_is_stale(locked, draft_version, draft_tab):
            raise StaleDraft(locked.draft_version)
        project = locked.project
        fields = validate_ranking(project=project, assignment=locked, answers=answers)
        now = timezone.now()
        expired = locked.status == Assignment.Status.EXPIRED or (
            locked.reserved_until is not None and locked.reserved_until <= now
        )
        # The item's row lock serialises writes on its pairs (two annotators' implied judgments, a missing
        # comparison created once) and is the expired submit's recount lock.
        Item.objects.select_for_update().filter(pk=locked.item_id).values_list("pk").first()
        if (
            expired
            and not locked.is_gold
            and not has_free_item_slot(item_id=locked.item_id, project=project, exclude_assignment=locked.pk)
        ):
            keep_draft(locked, answers)
            return None, True
        ranking = Ranking.objects.create(
            project=project,
            item=locked.item,
            annotator=locked.annotator,
            assignment=locked,
            is_gold=locked.is_gold,
            created_at=now,
            updated_at=now,
            **fields,
        )
        RankingRevision.objects.create(
            ranking=ranking, number=1, submission_id=submission_id, created_at=now, **fields
        )
        Assignment.objects.filter(pk=locked.pk).update(status=Assignment.Status.SUBMITTED, submitted_at=now)
        if draft is not None:
            draft.delete()
        write_implied_judgments(ranking, answers=answers, now=now)
    return ranking, False


def revise_ranking(*, ranking: Ranking, user, answers: dict, submission_id: str) -> Ranking:
    """A new revision of the annotator's own ranking within the revision window; its implied judgments get a
    new revision each. A repeated submission_id returns the ranking unchanged."""
    with transaction.atomic():
        locked, done = lock_own_for_revision(
            Ranking, ranking.pk, user=user, submission_id=submission_id, related=("item",)
        )
        if done:
            return locked
        fields = validate_ranking(project=locked.project, assignment=locked.assignment, answers=answers)
        now = timezone.now()
        Item.objects.select_for_update().filter(pk=locked.item_id).values_list("pk").first()
        append_revision(locked, fields, submission_id=submission_id, now=now)
        write_implied_judgments(locked, answers=answers, now=now)
    return locked


def _comparisons_by_pair(item: Item, response_ids: list[int]) -> dict[frozenset[int], Comparison]:
    """The item's comparison of every pair of `response_ids`, creating any missing one (an item imported with
    fewer pairs than its responses make). Call with the item row locked."""
    found = {
        frozenset((c.response_a_id, c.response_b_id)): c
        for c in Comparison.objects.filter(
            item=item, response_a__in=response_ids, response_b__in=response_ids
        )
    }
    responses = {r.pk: r for r in Response.objects.filter(pk__in=response_ids).only("pk", "text_key")}
    missing = []
    for pos, x in enumerate(sorted(response_ids)):
        for y in sorted(response_ids)[pos + 1 :]:
            if frozenset((x, y)) not in found:
                # A is the response that arrived first, as the importers order them.
                missing.append(
                    Comparison(
                        project_id=item.project_id,
                        item=item,
                        response_a_id=x,
                        response_b_id=y,
                        pair_key=pair_key(item.prompt_key, responses[x].text_key, responses[y].text_key),
                        random_key=random.random(),
                    )
                )
    for comparison in Comparison.objects.bulk_create(missing):
        found[frozenset((comparison.response_a_id, comparison.response_b_id))] = comparison
    return found


def write_implied_judgments(ranking: Ranking, *, answers: dict, now) -> list[Judgment]:
    """Write or revise the judgment `ranking` implies on each pair of its responses (inside the ranking's
    transaction, item row locked): a new JudgmentRevision on each; a new crowd, non-gold judgment counts
    toward its comparison's `crowd_judgments`. The rubric savers get each pair's two responses' answers
    (`answers["rubric"]`, keyed by response id). New judgments and their first revisions are written in bulk."""
    ids = [rid for tier in ranking.tiers for rid in tier]
    by_pair = _comparisons_by_pair(ranking.item, ids)
    existing = {j.comparison_id: j for j in Judgment.objects.filter(ranking=ranking).select_for_update()}
    rubric = answers.get("rubric") if isinstance(answers.get("rubric"), dict) else {}
    fresh: list[tuple[Judgment, dict]] = []
    written: list[tuple[Judgment, JudgmentRevision]] = []
    for pair in implied_pairs(ranking.tiers):
        comparison = by_pair[frozenset(pair[:2])]
        sa, sb = (
            ranking.safety.get(str(rid), {}) for rid in (comparison.response_a_id, comparison.response_b_id)
        )
        fields = {
            "preference": None,
            "choice": outcome_for(pair, comparison.response_a_id),
            "a_safe": sa.get("safe"),
            "b_safe": sb.get("safe"),
            "a_harm_categories": sa.get("harm_categories") or [],
            "b_harm_categories": sb.get("harm_categories") or [],
            "a_severity": sa.get("severity"),
            "b_severity": sb.get("severity"),
            "justification": ranking.justification,
        }
        judgment = existing.get(comparison.pk)
        if judgment is None:
            judgment = Judgment(
                project_id=ranking.project_id,
                comparison=comparison,
                annotator=ranking.annotator,
                ranking=ranking,
                is_source=ranking.is_source,
                imported=ranking.imported,
                is_gold=ranking.is_gold,
                created_at=now,
                updated_at=now,
                **fields,
            )
            fresh.append((judgment, fields))
        else:
            judgment.comparison = comparison
            written.append((judgment, append_revision(judgment, fields, submission_id=None, now=now)))
    Judgment.objects.bulk_create([judgment for judgment, _ in fresh])
    firsts = JudgmentRevision.objects.bulk_create(
        [
            JudgmentRevision(judgment=judgment, number=1, created_at=now, **fields)
            for judgment, fields in fresh
        ]
    )
    written += zip([judgment for judgment, _ in fresh], firsts, strict=True)
    for judgment, pair_revision in written:
        pair_revision.judgment = judgment
        sides = {"a": judgment.comparison.response_a_id, "b": judgment.comparison.response_b_id}
        pair_answers = {"rubric": {side: rubric.get(str(rid)) or {} for side, rid in sides.items()}}
        for saver in answer_savers:
            saver(pair_revision, pair_answers)
    counted = not ranking.is_gold and not ranking.is_source and ranking.annotator.kind == Annotator.Kind.CROWD
    if counted and fresh:
        Comparison.objects.filter(pk__in=[judgment.comparison_id for judgment, _ in fresh]).update(
            crowd_judgments=F("crowd_judgments") + 1
        )
    judgments_changed.send(sender=Judgment, project_id=ranking.project_id)
    return [judgment for judgment, _ in written]


def gold_accuracy(ranking: Ranking) -> tuple[int, int]:
    """(pairs the ranking orders as gold says, gold pairs) on its item."""
    right = total = 0
    for judgment in ranking.pair_judgments.filter(comparison__gold__isnull=False).select_related(
        "comparison__gold"
    ):
        total += 1
        right += judgment.choice == judgment.comparison.gold.choice
    return right, total
