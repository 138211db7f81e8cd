"""The Playground in a real browser: Debian's headless Chromium, driven by Playwright, against
the session's live service (no mocked responses). Screenshots go to test-artifacts/playground/
(or $PLAYGROUND_ARTIFACTS), printed at the end of the run."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from serve_app.cli.local import PROJECT_ROOT
from tests.conftest import ASTRONAUT_FACE, best_iou, decode, encode, normalised, photo, text_image
from tests.integration.conftest import Service

pytestmark = pytest.mark.serve

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(
    os.environ.get("PLAYGROUND_ARTIFACTS", PROJECT_ROOT / "test-artifacts" / "playground")
)
API_KEY = "playground-test-key"
SLOW_MS = 120_000  # first calls load models on a 2-core machine
FACE_RGB = (0x06, 0xB6, 0xD4)  # playground.js's FACE_COLOUR
# Uncaught exceptions in the page's own script, per page.
JS_ERRORS: dict[Page, list[str]] = {}


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make install` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--disable-dev-shm-usage"]
        )
        try:
            yield chromium
        finally:
            chromium.close()
    # Said even under -q: where CI's artifacts are.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None and any(ARTIFACTS.glob("*.png")):
        with capture.global_and_fixture_disabled():
            print(f"\nPlayground screenshots: {ARTIFACTS}")


def dims(width: int, height: int) -> str:
    """Dimensions as the page writes them, with a multiplication sign."""
    return f"{width} \u00d7 {height}"


def open_page(browser: Browser, service: Service, width: int, height: int = 900) -> Page:
    """A fresh browser context (own localStorage) with the Playground loaded and started."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(SLOW_MS)
    errors = JS_ERRORS.setdefault(page, [])
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{service.base_url}/")
    page.wait_for_selector("body[data-ready=true]")
    return page


def close(page: Page) -> None:
    errors = JS_ERRORS.pop(page, [])
    page.context.close()
    assert errors == [], errors


@pytest.fixture
def page(browser: Browser, service: Service) -> Iterator[Page]:
    page = open_page(browser, service, 1280)
    try:
        yield page
    finally:
        close(page)


def screenshot(page: Page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def pick(page: Page, name: str, data: bytes, mime: str = "image/jpeg") -> None:
    """Choose a file as a user would (the drop zone's file input); wait for upload and info."""
    page.set_input_files("#file-input", {"name": name, "mimeType": mime, "buffer": data})
    expect(page.locator("#source-status")).to_contain_text("Uploaded as", timeout=SLOW_MS)
    expect(page.locator("#info")).to_be_visible()


def drop(page: Page, name: str, data: bytes, mime: str) -> None:
    """Drop a file on the drop zone, as a drag from the desktop would."""
    transfer = page.evaluate_handle(
        """([name, b64, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: mime }));
            return dt;
        }""",
        [name, base64.b64encode(data).decode(), mime],
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    expect(page.locator("#source-status")).to_contain_text("Uploaded as", timeout=SLOW_MS)
    expect(page.locator("#info")).to_be_visible()


def only_step(page: Page, op: str) -> Locator:
    """Clear the pipeline and add one step of `op`; returns its card."""
    page.click("#clear-steps")
    page.select_option("#add-op", op)
    page.click("#add-step")
    return page.locator(f"#steps li.step[data-op={op}]")


def test_page_and_assets_are_served_outside_the_api_schema(client: httpx.Client) -> None:
    for path in ("/", "/playground"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "/playground/static/playground.js" in response.text
        assert "default-src 'self'" in response.headers["content-security-policy"]
    css = client.get("/playground/static/playground.css")
    js = client.get("/playground/static/playground.js")
    assert css.headers["content-type"].startswith("text/css")
    assert js.headers["content-type"].startswith("text/javascript")
    assert client.get(js.url, headers={"If-None-Match": js.headers["etag"]}).status_code == 304
    missing = client.get("/playground/static/__init__.py")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/playground")]


def test_upload_info_resize_and_the_equivalent_curl(
    page: Page, service: Service, tmp_path: Path
) -> None:
    sent: list[dict[str, str]] = []
    page.on("request", lambda r: sent.append(r.headers) if "/api/v1/" in r.url else None)
    page.fill("#api-key", API_KEY)  # the service has no keys configured: the header is ignored
    astronaut = encode(photo("astronaut"), "JPEG", quality=92)
    pick(page, "astronaut.jpg", astronaut)

    # Info and analysis: dimensions, format, swatches, histogram, sharpness.
    facts = page.locator("#facts")
    expect(facts).to_contain_text(dims(512, 512))
    expect(facts).to_contain_text("jpeg")
    assert page.locator("#swatches li").count() >= 3
    expect(page.locator("#analysis-facts")).to_contain_text("Sharpness")
    inked = page.evaluate(
        """() => { const c = document.getElementById('histogram');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
    )
    assert inked > 1000  # the histogram is drawn

    # A resize that changes the aspect ratio: fill 256x160 from the centre.
    step = only_step(page, "resize")
    step.locator("[data-k=width]").fill("256")
    step.locator("[data-k=height]").fill("160")
    step.locator("[data-k=mode]").select_option("fill")
    page.select_option("#out-format", "png")
    page.click("#run-pipeline")
    caption = page.locator("#result-caption")
    expect(caption).to_contain_text(dims(256, 160))
    expect(caption).to_contain_text("ms processing")
    size = page.evaluate(
        "() => { const i = document.getElementById('result-img');"
        " return [i.naturalWidth, i.naturalHeight, i.complete]; }"
    )
    assert size == [256, 160, True]
    assert page.locator("#result-img").get_attribute("data-bytes") not in (None, "0")

    # The JSON and curl shown are the request that ran: run the curl and get the same image.
    pipeline = json.loads(page.inner_text("#pipeline-json"))
    assert pipeline == {
        "steps": [
            {"op": "resize", "width": 256, "height": 160, "mode": "fill", "gravity": "center"}
        ],
        "format": "png",
    }
    curl = page.inner_text("#curl-code")
    assert "-F file=@'astronaut.jpg'" in curl and '-H "X-API-Key: $API_KEY"' in curl
    (tmp_path / "astronaut.jpg").write_bytes(astronaut)
    command = curl.replace("\\\n", " ")
    assert shlex.split(command)[0] == "curl"
    subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        env={**os.environ, "API_KEY": API_KEY},
        check=True,
        timeout=60,
    )
    result = decode((tmp_path / "result.png").read_bytes())
    assert (result.format, result.size) == ("PNG", (256, 160))

    # Every API call carried the key, and the key is remembered.
    assert sent and all(h.get("x-api-key") == API_KEY for h in sent)
    assert page.evaluate("localStorage.getItem('playground.apiKey')") == API_KEY
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#api-key") == API_KEY
    # ... and so is the upload, which can be chosen again.
    assert page.locator("#recent option").count() == 2
    page.select_option("#recent", index=1)
    expect(page.locator("#source-status")).to_contain_text("Using upload")
    expect(page.locator("#facts")).to_contain_text(dims(512, 512))
    assert "-F image_id=" in page.inner_text("#curl-code")


def test_face_detection_draws_one_box_with_confidence_on_hover(page: Page) -> None:
    pick(page, "astronaut.jpg", encode(photo("astronaut"), "JPEG", quality=92))
    page.select_option("#face-engine", "mtcnn")
    page.click("#run-faces")
    canvas = page.locator("#overlay")
    expect(canvas).to_have_attribute("data-boxes", "1", timeout=SLOW_MS)
    expect(page.locator("#ai-status")).to_contain_text("1 face found by mtcnn")

    # The box is the astronaut's face, and it is drawn: the canvas has the face colour on its
    # left edge (the image there is not cyan).
    listed = page.locator("#ai-list li").first.get_attribute("data-box") or ""
    x1, y1, x2, y2 = (float(v) for v in listed.split(","))
    assert best_iou(ASTRONAUT_FACE, [{"box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}}]) >= 0.6
    edge = page.evaluate(
        """([x, y]) => { const c = document.getElementById('overlay');
        return Array.from(c.getContext('2d').getImageData(x - 1, y, 3, 1).data); }""",
        [round(x1), round((y1 + y2) / 2)],
    )
    pixels = [edge[i : i + 3] for i in range(0, len(edge), 4)]
    assert min(sum(abs(a - b) for a, b in zip(p, FACE_RGB, strict=True)) for p in pixels) < 60

    # Hovering the box shows its confidence.
    frame = canvas.bounding_box()
    assert frame is not None
    scale = frame["width"] / 512
    page.mouse.move(frame["x"] + (x1 + x2) / 2 * scale, frame["y"] + (y1 + y2) / 2 * scale)
    tooltip = page.locator("#tooltip")
    expect(tooltip).to_be_visible()
    expect(tooltip).to_contain_text("face")
    expect(tooltip).to_contain_text(re.compile(r"confidence \d+(\.\d)?%"))
    screenshot(page, "faces-1280")


def test_ocr_lists_and_highlights_the_text(page: Page) -> None:
    words = "Playground reads this"
    drop(page, "text.png", encode(text_image(words), "PNG"), "image/png")
    expect(page.locator("#original-caption")).to_contain_text("text.png")
    page.select_option("#ocr-engine", "tesseract")
    page.click("#run-ocr")
    canvas = page.locator("#overlay")
    expect(canvas).to_have_attribute("data-kind", "ocr", timeout=SLOW_MS)
    text = page.locator("#ocr-text")
    expect(text).to_be_visible()
    assert normalised(text.inner_text()) == normalised(words)
    assert int(canvas.get_attribute("data-boxes") or 0) >= 3  # a box per word, highlighted
    listed = normalised(" ".join(page.locator("#ai-list .ai-label").all_inner_texts()))
    assert listed == normalised(words)
    screenshot(page, "ocr-1280")


def test_api_errors_are_shown_as_the_api_words_them(page: Page, client: httpx.Client) -> None:
    astronaut = encode(photo("astronaut"), "JPEG", quality=92)
    pick(page, "astronaut.jpg", astronaut)
    step = only_step(page, "crop")
    step.locator("[data-k=aspect]").fill("wide")
    page.click("#run-pipeline")
    banner = page.locator("#error")
    expect(banner).to_be_visible()
    # The same request straight to the API: the page shows its status, code and message.
    expected = client.post(
        "/api/v1/process",
        files={"file": ("a.jpg", astronaut, "image/jpeg")},
        data={"pipeline": page.inner_text("#pipeline-json")},
    )
    error = expected.json()["error"]
    assert expected.status_code == 422
    expect(page.locator("#error-title")).to_have_text(f"422 {error['code']}")
    expect(page.locator("#error-message")).to_contain_text(error["message"])
    page.click("#error-close")
    expect(banner).to_be_hidden()


def test_the_page_fits_a_phone_and_works_from_the_keyboard(
    browser: Browser, service: Service
) -> None:
    page = open_page(browser, service, 375, 800)
    try:
        pick(page, "astronaut.jpg", encode(photo("astronaut"), "JPEG", quality=92))
        page.click("#run-pipeline")
        expect(page.locator("#result-caption")).to_contain_text(dims(400, 400))
        page.click("#run-faces")
        expect(page.locator("#overlay")).to_have_attribute("data-boxes", "1", timeout=SLOW_MS)
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= 375 + 1, f"the page scrolls sideways at 375 px: {width}"
        screenshot(page, "phone-375")

        # Every visible control has a label a screen reader can read.
        unlabelled = page.evaluate(
            """() => Array.from(document.querySelectorAll('input, select, button, textarea'))
              .filter(e => e.getClientRects().length || e.type === 'file')
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                           && !(e.tagName === 'BUTTON' && e.textContent.trim()))
              .map(e => e.id || e.outerHTML.slice(0, 80))"""
        )
        assert unlabelled == []

        # The main controls are reached with Tab alone.
        page.evaluate("document.activeElement && document.activeElement.blur()")
        reached: set[str] = set()
        for _ in range(80):
            page.keyboard.press("Tab")
            reached.add(page.evaluate("document.activeElement.id"))
        wanted = {
            "api-key", "file-input", "recent", "add-op", "add-step", "out-format",
            "run-pipeline", "obj-confidence", "run-objects", "face-engine", "run-faces",
            "ocr-engine", "run-ocr", "batch-files", "batch-submit",
        }  # fmt: skip
        assert wanted <= reached, wanted - reached
    finally:
        close(page)

    # The wide layout has no sideways scroll either.
    page = open_page(browser, service, 1280)
    try:
        pick(page, "astronaut.jpg", encode(photo("astronaut"), "JPEG", quality=92))
        page.click("#run-pipeline")
        expect(page.locator("#result-caption")).to_contain_text(dims(400, 400))
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 1280 + 1
        screenshot(page, "desktop-1280")
    finally:
        close(page)


def test_the_pipeline_as_a_get_url_unsafe_then_signed(page: Page) -> None:
    """The pipeline being built is shown as a GET URL (unsafe without a key, signed with the
    one typed in, exactly as serve_app.urls signs), and its result fetched through it."""
    from serve_app.urls import sign_url
    from tests.integration.conftest import URL_SIGNING_KEY

    pick(page, "astronaut.jpg", encode(photo("astronaut"), "JPEG", quality=92))
    image_id = page.inner_text("#source-status").split("Uploaded as ")[1].rstrip(".")
    step = only_step(page, "thumbnail")
    step.locator("[data-k=width]").fill("200")
    step.locator("[data-k=height]").fill("120")
    path = f"200x120/filters:cover()/{image_id}"
    code = page.locator("#url-code")
    expect(code).to_have_text(re.compile(rf"/unsafe/{re.escape(path)}$"))
    expect(page.locator("#url-note")).to_contain_text("unsafe")
    page.click("#url-open")
    caption = page.locator("#url-result-caption")
    expect(caption).to_contain_text(dims(200, 120))
    expect(caption).to_contain_text("max-age=")

    page.fill("#url-key", URL_SIGNING_KEY)
    expect(code).to_have_text(re.compile(re.escape(sign_url(path, URL_SIGNING_KEY)) + "$"))
    page.click("#url-open")
    expect(caption).to_contain_text(dims(200, 120))
    size = page.evaluate(
        "() => { const i = document.getElementById('url-result-img');"
        " return [i.naturalWidth, i.naturalHeight]; }"
    )
    assert size == [200, 120]
    screenshot(page, "url")

    page.select_option("#add-op", "enhance")
    page.click("#add-step")
    expect(page.locator("#url-note")).to_contain_text("No GET URL")
    expect(page.locator("#url-open")).to_be_disabled()


def test_redact_and_face_gravity_controls(page: Page) -> None:
    """A fill aimed at the faces, then the faces pixelated (issue #17): the request the page
    sends is those steps, the result has the asked size, and the GET URL says redact(...)."""
    pick(page, "astronaut.jpg", encode(photo("astronaut"), "JPEG", quality=92))
    resize = only_step(page, "resize")
    resize.locator("[data-k=width]").fill("120")
    resize.locator("[data-k=height]").fill("200")
    resize.locator("[data-k=mode]").select_option("fill")
    resize.locator("[data-k=gravity]").select_option("faces")
    page.select_option("#add-op", "redact")
    page.click("#add-step")
    page.locator("#steps li.step[data-op=redact] [data-k=style]").select_option("pixelate")
    page.select_option("#out-format", "png")
    page.click("#run-pipeline")
    expect(page.locator("#result-caption")).to_contain_text(dims(120, 200), timeout=SLOW_MS)
    steps = json.loads(page.inner_text("#pipeline-json"))["steps"]
    assert steps[0]["gravity"] == "faces"
    assert steps[1] == {
        "op": "redact", "target": "faces", "style": "pixelate", "strength": 50, "padding": 0.1
    }  # fmt: skip
    only_step(page, "thumbnail")
    page.select_option("#add-op", "redact")
    page.click("#add-step")
    expect(page.locator("#url-code")).to_contain_text("redact(faces)")


def test_a_batch_is_followed_by_its_events(page: Page) -> None:
    """The batch panel follows the task through GET /tasks/{id}/events (issue #17), not by
    polling: every item shows its result and the status ends succeeded."""
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    files = [
        {
            "name": f"{i}.jpg",
            "mimeType": "image/jpeg",
            "buffer": encode(photo("coffee").resize((200 + i, 150))),
        }
        for i in range(3)
    ]
    page.set_input_files("#batch-files", files)
    page.click("#batch-submit")
    expect(page.locator("#batch-status")).to_have_text("succeeded", timeout=SLOW_MS)
    expect(page.locator("#batch-items li.succeeded")).to_have_count(3)
    followed = [url for url in requests if "/api/v1/tasks/" in url]
    assert followed and all(url.endswith("/events") for url in followed), followed
