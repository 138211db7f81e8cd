"""The version of the code that turns an input into result bytes.

Results are cached by a key that names what produced them (serve_app/store/result_cache.py),
and that key is also the result's ETag: a change to what an operation outputs for the same input
and pipeline must change the key, or clients get stale bytes and 304s for the cache's lifetime.
Pillow's version is part of it (its resampling and encoders change between releases, and the
codecs its wheels bundle with them); ours is bumped by hand.
"""

from __future__ import annotations

import PIL

# Bump when any operation's, the decoder's or an encoder's output changes for the same input and
# pipeline (a new default, a fixed bug, another resampling filter).
PROCESSING_VERSION = 1


def processing_version() -> str:
    return f"{PROCESSING_VERSION}+pillow-{PIL.__version__}"
