"""Client load for the integration tests that fault or scale the ingress: threads resizing
distinct images until stopped, every answer kept with when its request started."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx

from tests.conftest import encode, photo


@dataclass(frozen=True)
class Answer:
    started: float  # time.monotonic()
    outcome: str  # the status code, or the httpx exception's name when no answer came


class ResizeLoad:
    """`clients` threads, each on its own keep-alive connection, resizing a 1200 px JPEG to a
    width no earlier request asked (so no cache hit makes it cheap) until stopped."""

    def __init__(self, base_url: str, clients: int) -> None:
        self.base_url = base_url
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]
        self._image = encode(photo("coffee").resize((1200, 800)), "JPEG", quality=90)

    def _run(self, index: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                files = {"file": ("c.jpg", self._image, "image/jpeg")}
                data = {"width": str(100 + (index * 97 + n) % 1000), "quality": str(50 + n % 40)}
                started = time.monotonic()
                try:
                    outcome = str(http.post("/api/v1/resize", files=files, data=data).status_code)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with self._lock:
                    self.answers.append(Answer(started, outcome))

    def outcomes(self) -> Counter[str]:
        with self._lock:
            return Counter(a.outcome for a in self.answers)

    def __enter__(self) -> ResizeLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)
