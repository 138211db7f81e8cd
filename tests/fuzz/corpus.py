"""The fuzzing corpus's seeds: real images of every allowed format (tests/fixtures/seeds.py)
and the small entries of the hostile catalogue. Kept free of atheris so tests can import it."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.hostile import CATALOGUE
from tests.fixtures.seeds import seed_images

MAX_SEED_BYTES = 64 * 1024


def write_corpus(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    seeds = dict(seed_images())
    seeds |= {f"hostile_{e.name}": e.data for e in CATALOGUE if 0 < len(e.data) <= MAX_SEED_BYTES}
    for name, data in sorted(seeds.items()):
        path = folder / name
        path.write_bytes(data)
        written.append(path)
    return written
