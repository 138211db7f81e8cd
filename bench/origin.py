"""A local HTTP origin for the HTTP-loader benchmark: serves a folder's files on 127.0.0.1
(aiohttp, its own process, so its work is not counted against either side's server).

    python -m bench.origin ROOT PORT
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web


def app(root: Path) -> web.Application:
    application = web.Application()
    application.router.add_static("/", root, follow_symlinks=False)
    return application


def main() -> None:
    root, port = Path(sys.argv[1]), int(sys.argv[2])
    web.run_app(app(root), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
