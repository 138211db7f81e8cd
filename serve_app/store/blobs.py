"""Deleting a shared, content-addressed blob safely.

Uploads, stored results and cached results share blobs by sha256, so "is this blob still
named by a row?" and "delete it" must be one decision, or a save of the same bytes landing
between them leaves a row without its blob. Every writer pins the blob (`pin`: its `blobs` row,
`pinned_at` = now, by the database's clock) before storing it and writing the row that names
it. `release` deletes the pin row in one conditional DELETE, only when the pin is older than
`PIN_GRACE_S` (no writer is on its way) and no row names the blob, and deletes the blob
before it commits: a writer pinning meanwhile waits on that row (PostgreSQL's row lock,
SQLite's write lock), then stores the blob again.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite

from serve_app.store.clock import db_ago, db_now
from serve_app.store.db import Database
from serve_app.store.models import BlobPin, CachedResult, ImageRecord
from serve_app.store.storage import BlobStore

# Longer than a blob write plus its row insert ever takes.
PIN_GRACE_S = 900.0


def pin(db: Database, sha256: str) -> None:
    """Mark the blob as about to be (re)written: no release deletes it for PIN_GRACE_S."""
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(BlobPin).values(sha256=sha256, pinned_at=db_now())
    with db.session() as session, session.begin():
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[BlobPin.sha256], set_={"pinned_at": db_now()}
            )
        )


def release(
    db: Database,
    store: BlobStore,
    sha256: str,
    *,
    grace_s: float = PIN_GRACE_S,
    before_delete: Callable[[], None] | None = None,
) -> bool:
    """Delete the blob if no row names it and no writer pinned it lately; True if deleted.
    `before_delete`: a test's hook between the decision and the blob's deletion."""
    unused = (
        (BlobPin.sha256 == sha256)
        & (BlobPin.pinned_at < db_ago(grace_s))
        & ~exists().where(ImageRecord.sha256 == sha256)
        & ~exists().where(CachedResult.sha256 == sha256)
    )
    with db.session() as session, session.begin():
        decided = session.execute(delete(BlobPin).where(unused))
        if not decided.rowcount:  # type: ignore[attr-defined]
            return False
        if before_delete is not None:
            before_delete()
        store.delete(store.key_for(sha256))  # a failure rolls the decision back: tried again
    return True


def collect(db: Database, store: BlobStore, limit: int, *, grace_s: float = PIN_GRACE_S) -> int:
    """Delete up to `limit` blobs that no row names (left by a failed insert, or released
    while a pin was fresh); the number deleted."""
    with db.session() as session:
        candidates = session.scalars(
            select(BlobPin.sha256)
            .where(
                BlobPin.pinned_at < db_ago(grace_s),
                ~exists().where(ImageRecord.sha256 == BlobPin.sha256),
                ~exists().where(CachedResult.sha256 == BlobPin.sha256),
            )
            .limit(limit)
        ).all()
    return sum(release(db, store, sha, grace_s=grace_s) for sha in candidates)
