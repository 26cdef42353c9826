"""A model version as a `.tar.gz` of its Hugging Face folder, through a signed, expiring link.

The link is the credential (as a presigned URL is): it names the version and the user it was made for, and
expires after `ARBITER_MODEL_LINK_SECONDS`, so a script can fetch it with `curl` and no session. Every use checks
again that the user is active and still a researcher or admin of the project, and is audited.

The archive is streamed in bounded memory: each file's tar header comes from `tarfile.TarInfo.tobuf`, its bytes
are read in chunks, and the whole stream goes through one gzip `zlib.compressobj`. Weights barely compress, so
the level is 1 (fast); the model card (README.md, with lineage and metrics) and the tokenizer files compress well
at any level.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.http import Http404
from django.utils import timezone

from projects.access import role_in
from projects.models import AuditEvent

from .models import ModelVersion

LINK_SALT = "arbiter.model.download"
DOWNLOAD_ROLES = ("admin", "researcher")
CHUNK_BYTES = 1 << 20
GZIP_LEVEL = 1
GZIP_WBITS = 31  # zlib's gzip container (16 + a 32 KiB window)


def link_seconds() -> int:
    return int(settings.ARBITER_MODEL_LINK_SECONDS)


def can_download(user, version: ModelVersion) -> bool:
    """Researchers and admins of the version's (live) project."""
    project = version.project
    return project.deleted_at is None and role_in(user, project) in DOWNLOAD_ROLES


def archive_name(version: ModelVersion) -> str:
    return f"{version.project.slug}-model{version.pk}"


def download_token(version: ModelVersion, user) -> str:
    """A signed token naming the version and the user; it expires after `link_seconds()`."""
    return signing.TimestampSigner(salt=LINK_SALT).sign_object({"version": version.pk, "user": user.pk})


def link_expires_at(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=link_seconds())


def version_for_token(token: str) -> tuple[ModelVersion, object]:
    """The version and user a token names, or Http404: when the token is bad or expired, the user inactive or no
    longer allowed, or the model's folder gone."""
    try:
        data = signing.TimestampSigner(salt=LINK_SALT).unsign_object(token, max_age=link_seconds())
    except signing.BadSignature as exc:  # SignatureExpired is a BadSignature
        raise Http404("This download link is invalid or has expired") from exc
    user = get_user_model().objects.filter(pk=data.get("user"), is_active=True).first()
    version = ModelVersion.objects.select_related("project", "run").filter(pk=data.get("version")).first()
    if user is None or version is None or not can_download(user, version):
        raise Http404("No such model")
    if not Path(version.path).is_dir():
        raise Http404("This model's files are no longer on the server")
    return version, user


def record_download(version: ModelVersion, user) -> None:
    AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username(),
        action="model.download",
        project=version.project,
        target_type="model_version",
        target_id=str(version.pk),
        data={"run": version.run_id, "snapshot_hash": version.snapshot_hash},
    )


def _files(folder: Path) -> list[Path]:
    """The folder's regular files (not links, not the registry's temporary card files), in a stable order."""
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and not p.name.startswith(".")
    )


def tar_gz_chunks(folder: Path, root: str) -> Iterator[bytes]:
    """A gzip-compressed POSIX tar of `folder`'s files under `root/`, as chunks of bytes, in bounded memory."""
    gz = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
    written = 0

    def out(raw: bytes) -> bytes:
        nonlocal written
        written += len(raw)
        return gz.compress(raw)

    for path in _files(folder):
        stat = path.stat()
        info = tarfile.TarInfo(f"{root}/{path.relative_to(folder).as_posix()}")
        info.size = stat.st_size
        info.mtime = int(stat.st_mtime)
        info.mode = 0o644
        yield out(info.tobuf(tarfile.PAX_FORMAT))
        sent = 0
        with path.open("rb") as f:
            while chunk := f.read(min(CHUNK_BYTES, info.size - sent)):
                sent += len(chunk)
                yield out(chunk)
        if sent != info.size:  # the file shrank while it was read: the archive would be corrupt
            raise OSError(f"{path} changed while it was being archived")
        yield out(tarfile.NUL * (-info.size % tarfile.BLOCKSIZE))
    yield out(tarfile.NUL * 2 * tarfile.BLOCKSIZE)  # end of archive
    yield out(tarfile.NUL * (-written % tarfile.RECORDSIZE))  # whole records, as tar(1) writes them
    yield gz.flush()
