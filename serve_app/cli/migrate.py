"""`make db-migrate`: bring the configured database (DATABASE_URL, else the embedded SQLite) to
the newest schema, or up or down to a given revision.

    python -m serve_app.cli.migrate            # upgrade to head
    python -m serve_app.cli.migrate 0001       # up or down to a revision
    python -m serve_app.cli.migrate --current  # print the revision the database is at
"""

from __future__ import annotations

import argparse

from serve_app.settings import get_settings
from serve_app.store.db import Database


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the database migrations.")
    parser.add_argument("revision", nargs="?", default="head")
    parser.add_argument("--current", action="store_true", help="show the current revision")
    args = parser.parse_args(argv)
    db = Database(get_settings().database_url)
    where = db.engine.url.render_as_string(hide_password=True)
    if not args.current:
        db.migrate(args.revision)
    print(f"{where}: at revision {db.revision() or 'none'}")


if __name__ == "__main__":
    main()
