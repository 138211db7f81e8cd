"""The database's clock in SQL, so leases and retention never depend on a replica's clock.

SQLite keeps a `DateTime` as its UTC wall time in text (`YYYY-MM-DD HH:MM:SS.ffffff`, what
SQLAlchemy writes for `utcnow()`): `strftime(... 'now')` is UTC in that shape, to the
millisecond, so the two compare as text. PostgreSQL compares `timestamptz` as instants,
whatever the session's time zone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now'{})"


class db_now(FunctionElement[Any]):
    """The database's current time."""

    type = DateTime(timezone=True)
    inherit_cache = True


class db_in(FunctionElement[Any]):
    """The database's current time plus `seconds` (less, when negative)."""

    type = DateTime(timezone=True)
    inherit_cache = True

    def __init__(self, seconds: float) -> None:
        super().__init__(bindparam(None, float(seconds), unique=True))


def db_ago(seconds: float) -> db_in:
    """The database's current time less `seconds`."""
    return db_in(-seconds)


@compiles(db_now)
def _now(element: db_now, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(db_now, "sqlite")
def _now_sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    return _SQLITE_NOW.format("")


@compiles(db_in)
def _in(element: db_in, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"(CURRENT_TIMESTAMP + ({seconds}) * INTERVAL '1 second')"


@compiles(db_in, "sqlite")
def _in_sqlite(element: db_in, compiler: Any, **kw: Any) -> str:
    # SQLite's modifier takes a signed number: '5.0 seconds', '-5.0 seconds'.
    seconds = compiler.process(element.clauses, **kw)
    return _SQLITE_NOW.format(f", ({seconds}) || ' seconds'")
