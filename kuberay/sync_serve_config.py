"""Keep `spec.serveConfigV2` of kuberay/rayservice.yaml generated from serve_config.yaml.

    python kuberay/sync_serve_config.py           # rewrite the serveConfigV2 block in place
    python kuberay/sync_serve_config.py --check   # exit 1 if the block is out of date

serve_config.yaml is the one truth for applications, deployments, replicas and resources. In a
pod, two things differ, and only these:
- `http_options.host` is `0.0.0.0`: the Serve proxy must accept traffic from the Kubernetes
  Service, not only from inside its own pod (the local file binds 127.0.0.1).
- `target_capacity` is dropped: KubeRay sets it itself during incremental upgrades.

Only the serveConfigV2 block of the manifest is rewritten; the rest (cluster shape, image,
resources, comments) is edited by hand. Pure Python + PyYAML: no Ray needed.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVE_CONFIG = REPO_ROOT / "serve_config.yaml"
MANIFEST = REPO_ROOT / "kuberay" / "rayservice.yaml"

POD_HTTP_HOST = "0.0.0.0"
# Top-level Serve config fields the KubeRay operator writes itself.
KUBERAY_MANAGED_FIELDS = ("target_capacity",)
HEADER = "# Generated from serve_config.yaml by kuberay/sync_serve_config.py; do not edit here.\n"

_BLOCK_KEY = re.compile(r"^(?P<indent>[ ]*)serveConfigV2:[ ]*\|[-+]?[ ]*$")


def kuberay_serve_config(config: dict[str, Any]) -> dict[str, Any]:
    """The Serve config as it must run inside a KubeRay pod (see the module docstring)."""
    result = copy.deepcopy(config)
    for field in KUBERAY_MANAGED_FIELDS:
        result.pop(field, None)
    http_options = dict(result.get("http_options") or {})
    http_options["host"] = POD_HTTP_HOST
    result["http_options"] = http_options
    return result


def render_serve_config_v2(serve_config_text: str) -> str:
    """The text of serveConfigV2, generated from the text of serve_config.yaml."""
    config = yaml.safe_load(serve_config_text)
    if not isinstance(config, dict) or not config.get("applications"):
        raise ValueError("serve_config.yaml must be a mapping with `applications`")
    body = yaml.safe_dump(
        kuberay_serve_config(config), sort_keys=False, default_flow_style=False, width=100
    )
    return HEADER + body


def _block_bounds(lines: list[str]) -> tuple[int, int, str]:
    """(first line of the block body, line after its last non-blank line, key indent)."""
    matches = [(i, m) for i, line in enumerate(lines) if (m := _BLOCK_KEY.match(line))]
    if len(matches) != 1:
        raise ValueError(
            f"expected exactly one `serveConfigV2: |` line in the manifest, found {len(matches)}"
        )
    start, match = matches[0]
    key_indent = match.group("indent")
    end = start + 1
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        if len(line) - len(line.lstrip(" ")) <= len(key_indent):
            break
        end = i + 1
    return start + 1, end, key_indent


def update_manifest(manifest_text: str, serve_config_v2: str) -> str:
    """The manifest text with its serveConfigV2 block replaced by `serve_config_v2`."""
    lines = manifest_text.splitlines(keepends=True)
    body_start, body_end, key_indent = _block_bounds(lines)
    indent = key_indent + "  "
    block = [
        (indent + line if line.strip() else "\n")
        for line in serve_config_v2.splitlines(keepends=True)
    ]
    updated = "".join(lines[:body_start] + block + lines[body_end:])
    # The block must read back as exactly the generated text (a literal block keeps it verbatim).
    documents = [d for d in yaml.safe_load_all(updated) if d]
    embedded = [d["spec"]["serveConfigV2"] for d in documents if d.get("kind") == "RayService"]
    if embedded != [serve_config_v2]:
        raise ValueError("the rewritten serveConfigV2 block does not read back as generated")
    return updated


def sync(serve_config: Path = SERVE_CONFIG, manifest: Path = MANIFEST) -> tuple[str, str]:
    """(current manifest text, manifest text with an up-to-date serveConfigV2)."""
    current = manifest.read_text()
    expected = update_manifest(current, render_serve_config_v2(serve_config.read_text()))
    return current, expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Regenerate serveConfigV2 in kuberay/rayservice.yaml from serve_config.yaml."
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if out of date")
    parser.add_argument("--serve-config", type=Path, default=SERVE_CONFIG)
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    args = parser.parse_args(argv)
    current, expected = sync(args.serve_config, args.manifest)
    if current == expected:
        print(f"{args.manifest}: serveConfigV2 is up to date")
        return 0
    if args.check:
        print(
            f"{args.manifest}: serveConfigV2 is out of date with {args.serve_config}; "
            "run `python kuberay/sync_serve_config.py`",
            file=sys.stderr,
        )
        return 1
    args.manifest.write_text(expected)
    print(f"{args.manifest}: serveConfigV2 regenerated from {args.serve_config}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
