"""What an import reports: counts, the bad lines (capped) and what was created."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

ERROR_CAP = 1000


@dataclass
class LineError:
    line: int
    field: str | None
    message: str


@dataclass
class ImportReport:
    format: str
    total_lines: int = 0
    ok_lines: int = 0
    bad_lines: int = 0
    errors: list[LineError] = field(default_factory=list)  # capped at ERROR_CAP; bad_lines stays exact
    items_created: int = 0
    responses_created: int = 0
    comparisons_created: int = 0
    judgments_created: int = 0
    duplicates: int = 0  # lines (or generic pairs) that added nothing because already present
    committed: bool = False
    revisions_created: int = 0  # raw: judgment revisions written
    rankings_created: int = 0  # raw ranking rows: rankings made
    ranking_revisions_created: int = 0  # raw ranking rows: ranking revisions written
    notes: list[str] = field(default_factory=list)

    def add_error(self, line: int, field_name: str | None, message: str) -> None:
        self.bad_lines += 1
        if len(self.errors) < ERROR_CAP:
            self.errors.append(LineError(line, field_name, message))

    def reject(self, line: int, field_name: str | None, message: str) -> None:
        """A line that parsed but clashes with stored records: it turns from good to bad."""
        self.ok_lines -= 1
        self.add_error(line, field_name, message)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        """as_dict without the error list (for audit events and job rows)."""
        data = self.as_dict()
        data["errors_shown"] = len(data.pop("errors"))
        return data


class ImportFailed(Exception):  # noqa: N818 - the name other parts call
    """Bad lines and not skip_invalid: nothing was committed."""

    def __init__(self, report: ImportReport):
        super().__init__(f"{report.bad_lines} bad line(s); nothing imported")
        self.report = report
