"""What the workbench tells the rest of the site, without knowing who listens (apps above annotate connect).

`judgments_changed(sender, project_id)`: a judgment of the project was written (submit, revision, import); sent
inside the writing transaction, so a receiver that acts later defers to `transaction.on_commit`.
"""

from __future__ import annotations

from django.dispatch import Signal

judgments_changed = Signal()
