"""Django's database session engine, with its one read per request as a prepared statement.

What it replaces: `django.contrib.sessions.backends.db.SessionStore.load`, which reads the session row through
the ORM (compiled afresh on every request, bound on the client, planned by PostgreSQL every time).

What it buys: the session read is the first statement of every request; here it is one prepared statement
(infra/prepared.py). Measured side by side in bench/RESULTS.md.

Why this way: a session engine of our own is Django's documented extension point ("Creating your own session
engine"; `load()` is one of the methods an engine implements). Everything else — storing, saving, logging out,
expiry, the cookie — is the database engine's own, so the session still lives in PostgreSQL alone (logging out
ends it even while Redis is down). When the row is missing or expired, Django's own `load()` runs, which also
forgets the unknown key (so a key the client made up is never saved).
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.utils import timezone

from infra import prepared

_READ_SQL = "SELECT session_data FROM django_session WHERE session_key = %s AND expire_date > %s"


class SessionStore(db.SessionStore):
    def load(self) -> dict:
        key = self.session_key
        if key:
            rows = prepared.run(_READ_SQL, [key, timezone.now()])
            if rows:
                return self.decode(rows[0][0])
        return super().load()
