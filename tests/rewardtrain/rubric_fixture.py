"""A project with a published rubric, crowd judgments that answer it, a snapshot and a reward model's scores,
simulated from known weights (the rubric reward tests and bench/rubric_reward_bench.py).

Each response has true criterion outcomes met_i ~ Bernoulli(p_i) and a hidden quality h ~ N(0, 1) that no
criterion sees. The humans' log-odds of preferring A are Σ w_i·(met_i(A) − met_i(B)) + h_weight·(h(A) − h(B));
the reward model scores a response model_scale·(Σ w_i·met_i + h_weight·h) + N(0, model_noise²). Each rater
answers each criterion with the truth flipped at the criterion's noise rate (a yes/no/n.a. criterion is
answered "na" at na_rate), and chooses by a draw from the logistic model on what they saw (their own
possibly flipped outcomes, "na" included), so their answers explain their choices.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from django.utils import timezone

from annotate.models import Judgment, JudgmentRevision
from curation.snapshots import create_snapshot
from projects.models import Project
from rewardtrain.models import ModelVersion, Score, TrainingRun
from rubrics import services
from rubrics.models import CriterionAnswer
from tests.factories import crowd_annotator, make_comparison


@dataclass(frozen=True)
class Spec:
    key: str
    text: str
    category: str
    true_weight: float  # log-odds per unit of met(A) − met(B)
    p: float  # P(met) of a response
    noise: float = 0.05  # P(a rater's answer is flipped)
    answer_type: str = "yes_no"


REALISTIC = (
    Spec("correct", "The answer is factually correct", "essential", 1.6, 0.6, 0.08),
    Spec("complete", "It answers every part of the question", "important", 0.9, 0.5, 0.12),
    Spec("cites", "It cites a source where one is needed", "important", 0.3, 0.4, 0.1, "yes_no_na"),
    Spec("tone", "The tone is polite", "optional", 0.4, 0.85, 0.3),
    Spec("long", "It is longer than it needs to be", "optional", -0.6, 0.45, 0.1),
    Spec("refuses", "It refuses a harmless request", "pitfall", -1.4, 0.15, 0.05),
    Spec("language", "It is written in the prompt's language", "optional", 0.0, 1.0, 0.0),
)


@dataclass
class Built:
    project: Project
    version: object
    snapshot: object
    model: ModelVersion | None
    specs: tuple[Spec, ...]
    comparisons: list = field(default_factory=list)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def build(
    project: Project,
    *,
    specs: tuple[Spec, ...] = REALISTIC,
    n_items: int = 60,
    per_item: int = 3,
    raters: int = 6,
    per_comparison: int = 3,
    h_weight: float = 1.0,
    model_scale: float = 0.5,
    model_noise: float = 0.8,
    na_rate: float = 0.3,
    with_model: bool = True,
    seed: int = 0,
    rubric_name: str = "Helpful answer",
) -> Built:
    """Items with per_item + 1 responses each and per_item comparisons among them (so folds must keep
    an item's comparisons together), judged by `per_comparison` of `raters` simulated raters."""
    rng = random.Random(seed)
    rubric = services.rubric_create(name=rubric_name, description="Simulated")
    version = rubric.versions.get()
    for s in specs:
        hand = (
            None if s.category != "optional" or s.true_weight >= 0 else 1.0
        )  # "long" keeps its hand weight +1
        services.criterion_add(
            version=version,
            key=s.key,
            text=s.text,
            category=s.category,
            weight=hand,
            answer_type=s.answer_type,
        )
    version = services.version_publish(version=version, user=None)
    project.rubric_version = version
    project.save(update_fields=["rubric_version"])
    people = [crowd_annotator(project, f"rater-{i}") for i in range(raters)]
    model = None
    if with_model:
        from curation.models import DatasetSnapshot

        trained_on = DatasetSnapshot.objects.create(project=project, content_hash="f" * 64)
        run = TrainingRun.objects.create(project=project, snapshot=trained_on, base_model="simulated")
        model = ModelVersion.objects.create(
            run=run, project=project, path="/simulated", snapshot_hash="f" * 64
        )
    comparisons = []
    scores = []
    now = timezone.now()
    pending: list[tuple[Judgment, dict]] = []
    for i in range(n_items):
        responses = []
        for j in range(per_item + 1):
            met = {s.key: rng.random() < s.p for s in specs}
            h = rng.gauss(0, 1)
            responses.append((f"Item {seed}-{i} response {j}", met, h))
        pairs = [(j, j + 1) for j in range(per_item)]
        for ja, jb in pairs:
            (text_a, met_a, h_a), (text_b, met_b, h_b) = responses[ja], responses[jb]
            comparison = make_comparison(project, f"Question {seed}-{i}", text_a, text_b)
            comparisons.append(comparison)
            for person in rng.sample(people, per_comparison):
                answers = {}
                seen_met = {}
                for side, met in (("a", met_a), ("b", met_b)):
                    for s in specs:
                        truth = met[s.key]
                        seen = (not truth) if rng.random() < s.noise else truth
                        seen_met[(side, s.key)] = seen
                        if s.answer_type == "yes_no_na" and rng.random() < na_rate:
                            answers[(side, s.key)] = "na"
                        else:
                            answers[(side, s.key)] = "yes" if seen else "no"
                # The rater chooses by what they saw: their answers explain their choice.
                logit = sum(
                    s.true_weight * (seen_met[("a", s.key)] - seen_met[("b", s.key)]) for s in specs
                ) + h_weight * (h_a - h_b)
                choice = "a" if rng.random() < _sigmoid(logit) else "b"
                strength = rng.choice([1, 2, 3])
                judgment = Judgment(
                    project=project,
                    comparison=comparison,
                    annotator=person,
                    choice=choice,
                    preference=-strength if choice == "a" else strength,
                    created_at=now,
                    updated_at=now,
                )
                pending.append((judgment, answers))
            if model is not None:
                for text, met, h in ((text_a, met_a, h_a), (text_b, met_b, h_b)):
                    quality = sum(s.true_weight * met[s.key] for s in specs) + h_weight * h
                    scores.append((comparison, text, model_scale * quality + rng.gauss(0, model_noise)))
    judgments = Judgment.objects.bulk_create([j for j, _ in pending])
    revisions = JudgmentRevision.objects.bulk_create(
        [
            JudgmentRevision(judgment=j, number=1, created_at=now, choice=j.choice, preference=j.preference)
            for j in judgments
        ]
    )
    criteria = {c.key: c for c in version.criteria.all()}
    CriterionAnswer.objects.bulk_create(
        [
            CriterionAnswer(
                revision=revision,
                side=side,
                version=version,
                criterion=criteria[key],
                criterion_key=key,
                answer=answer,
            )
            for revision, (_, answers) in zip(revisions, pending, strict=True)
            for (side, key), answer in answers.items()
        ]
    )
    if model is not None:
        seen_responses = set()
        rows = []
        for comparison, text, value in scores:
            response = comparison.response_a if comparison.response_a.text == text else comparison.response_b
            if response.pk in seen_responses:
                continue
            seen_responses.add(response.pk)
            rows.append(Score(model_version=model, response=response, value=value))
        Score.objects.bulk_create(rows)
    snapshot = create_snapshot(project=project, name="simulated")
    return Built(project, version, snapshot, model, specs, comparisons)
