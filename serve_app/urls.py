"""Sign URL API paths, from Python or the command line:

    python -m serve_app.urls sign "300x200/smart/IMAGE"           # the first URL_SIGNING_KEYS
    python -m serve_app.urls sign --key SECRET "fit-in/300x300/a.jpg"

prints `/<signature>/300x200/smart/IMAGE`, the path to put after the service's address.
`sign_url(path, key=None)` is the same from Python. libthumbor's `CryptoURL(key=...)` makes
the same URLs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from serve_app.guards.signature import UrlSigner


def sign_url(path: str, key: str | None = None) -> str:
    """`/<signature>/<path>`, signed with `key` or else the first of URL_SIGNING_KEYS."""
    if key is None:
        from serve_app.settings import get_settings

        keys = get_settings().url.signing_keys
    else:
        keys = [key]
    return UrlSigner(keys).sign(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app.urls", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sign = commands.add_parser("sign", help="sign a path (what follows the signature)")
    sign.add_argument("path", help='e.g. "300x200/smart/photos/cat.jpg"')
    sign.add_argument("--key", help="the signing key (default: the first URL_SIGNING_KEYS)")
    args = parser.parse_args(argv)
    try:
        print(sign_url(args.path, args.key))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
