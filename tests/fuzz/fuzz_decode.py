"""atheris target: decode-and-validate, then a small pipeline, on arbitrary bytes.

Any exception other than a typed pipelines.errors.ServiceError is a crash; so is a hang
(libFuzzer's -timeout) or a memory blow-up (-rss_limit_mb). Run it from the repository root:

    python -m tests.fuzz.fuzz_decode CORPUS_DIR -max_total_time=600 -rss_limit_mb=2048

Seed CORPUS_DIR first with tests.fuzz.corpus.write_corpus (real images and the small hostile
catalogue entries), as tests/fuzz/test_fuzz_smoke.py does when CI runs it briefly.
"""

from __future__ import annotations

import sys

import atheris

# Instrument our code and Pillow's pure-Python plugins (where headers are parsed), so the
# fuzzer is guided by their branches.
with atheris.instrument_imports(include=["pipelines", "PIL"]):
    from pipelines.analysis import image_info
    from pipelines.errors import ServiceError
    from pipelines.limits import Limits
    from pipelines.pipeline import run_pipeline
    from pipelines.spec import PipelineSpec

# Small ceilings keep each input fast; the property (typed errors only) does not depend on them.
LIMITS = Limits(max_pixels=1_000_000, max_frames=16, max_upload_bytes=1 << 20)
THUMBNAIL = PipelineSpec.model_validate({"steps": [{"op": "resize", "width": 24}], "format": "png"})


def test_one_input(data: bytes) -> None:
    try:
        run_pipeline(data, THUMBNAIL, LIMITS)
    except ServiceError:
        return
    try:
        image_info(data, LIMITS)  # the analysis path, on what decoded
    except ServiceError:
        return


def main() -> None:
    import warnings

    warnings.simplefilter("ignore")  # Pillow warns about the damage it skips; not a crash
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
