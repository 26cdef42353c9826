"""What `create_project` and `configure_project` share: reading settings from --set and --from, validating
them with the pages' form, and printing the result."""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from projects.models import Project
from projects.services import project_settings
from projects.settings_form import SETTINGS, form_data_from_values


def add_arguments(parser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help='A setting (repeatable); VALUE is read as JSON when it parses (3, 0.1, true, ["a"]), else text. '
        "Settings: " + ", ".join(SETTINGS),
    )
    parser.add_argument(
        "--from", dest="from_file", help="A JSON file of {setting: value} (applied before --set)"
    )
    parser.add_argument("--actor", help="Username recorded in the audit log (default: the command itself)")
    parser.add_argument("--json", action="store_true", help="Print the project's settings as JSON")


def values_from(options, allowed: set[str]) -> dict:
    values: dict = {}
    if options.get("from_file"):
        path = Path(options["from_file"])
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"{path}: not a readable JSON file: {exc}") from exc
        if not isinstance(loaded, dict):
            raise CommandError(f"{path}: expected a JSON object of settings")
        values.update(loaded)
    for item in options.get("set") or []:
        name, sep, raw = item.partition("=")
        if not sep:
            raise CommandError(f"--set {item!r}: write NAME=VALUE")
        try:
            values[name.strip()] = json.loads(raw)
        except ValueError:
            values[name.strip()] = raw
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise CommandError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
    return values


def validated(form_class, values: dict, instance=None):
    """The form's cleaned data for `values` over `instance`'s settings (a new project's defaults without one)."""
    form = form_class(form_data_from_values(values, instance or Project()), instance=instance)
    if not form.is_valid():
        problems = [f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()]
        raise CommandError("invalid settings, nothing changed:\n  " + "\n  ".join(problems))
    return form.cleaned_data


def actor_from(options):
    if not options.get("actor"):
        return None
    user = get_user_model().objects.filter(username=options["actor"]).first()
    if user is None:
        raise CommandError(f"--actor: no user named {options['actor']!r}")
    return user


def output(command, project, options, extra: dict | None = None) -> None:
    if options.get("json"):
        command.stdout.write(json.dumps(project_settings(project) | (extra or {}), ensure_ascii=False))
