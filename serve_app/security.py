"""API keys: clients send `X-API-Key`; settings hold only each key's sha256, so a leaked
config or environment does not leak a usable key. (Keys are 256-bit random strings, so a fast
hash is as good as a slow one here: there is nothing to brute-force.)

    python -m serve_app.security new-key NAME   # prints a new key and the line to configure
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, hashed: dict[str, str]) -> None:
        self.hashed = dict(hashed)

    @property
    def required(self) -> bool:
        return bool(self.hashed)

    def identify(self, presented: str) -> str | None:
        """The key's name, or None. Compares every entry in constant time."""
        digest = hash_key(presented)
        found = None
        for name, expected in self.hashed.items():
            if hmac.compare_digest(digest, expected):
                found = name
        return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Make API keys.")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new-key", help="print a new key and its SECURITY_API_KEYS entry")
    new.add_argument("name")
    args = parser.parse_args(argv)
    key = secrets.token_urlsafe(32)
    print(f"key (give it to the client; it is not stored): {key}")
    print(f"SECURITY_API_KEYS entry: {json.dumps({args.name: hash_key(key)})}")


if __name__ == "__main__":
    main()
