"""thumbor's URL grammar, as pure translation (no I/O): the path of a GET URL in, a
`PipelineSpec` out, and back.

- grammar.py: text <-> `ThumborUrl` (`parse`, `compose`, `split_signature`);
- plan.py: `ThumborUrl` -> `UrlPlan` (the spec, the image, max_age, meta): `plan`, `translate`;
- url_for.py: `PipelineSpec` -> path, where the grammar can say it.
"""

from pipelines.thumbor_url.grammar import (
    MAX_PATH,
    Filter,
    MalformedUrl,
    ThumborUrl,
    compose,
    parse,
    quote_image,
    split_filters,
    split_signature,
)
from pipelines.thumbor_url.plan import UrlPlan, plan, translate
from pipelines.thumbor_url.url_for import NoUrlForm, url_for

__all__ = [
    "MAX_PATH",
    "Filter",
    "MalformedUrl",
    "NoUrlForm",
    "ThumborUrl",
    "UrlPlan",
    "compose",
    "parse",
    "plan",
    "quote_image",
    "split_filters",
    "split_signature",
    "translate",
    "url_for",
]
