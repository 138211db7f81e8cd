"""Where the URL API's images come from: uploads, a source store (folder or bucket) and, when
enabled, http(s) URLs fetched with SSRF protection (serve_app/sources/loader.py)."""

from serve_app.sources.loader import Sources

__all__ = ["Sources"]
