// The Playground: a thin client of the public API (/api/v1). Plain JS, no build step, no
// dependencies. Every request goes through `api()`, which adds the X-API-Key header when one
// is set and turns the service's error body {"error": {"code", "message", "field"}} into an
// ApiError whose words are shown to the user unchanged.
"use strict";

(() => {
  const API = "/api/v1";
  const KEY_STORAGE = "playground.apiKey";
  const RECENT_STORAGE = "playground.recent";
  const RECENT_MAX = 20;
  const TERMINAL = new Set(["succeeded", "failed", "partially_failed", "cancelled"]);

  const $ = (id) => document.getElementById(id);

  // What the page is working on: the chosen image (a local File, or only the id of an
  // earlier upload), the steps of the pipeline, the batch task being followed.
  const state = {
    source: null, // {file: File|null, name, id, width, height, format, bytes, url}
    steps: [], // [{uid, op, el}]
    nextUid: 1,
    overlay: null, // {img, items, kind, active}
    task: null, // {id, url, timer}
  };

  // ---------------------------------------------------------------- API and errors

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field || null;
    }

    // The service's JSON error body when there is one; otherwise the HTTP status line.
    static async from(response) {
      let body = null;
      try {
        body = await response.json();
      } catch (_) {
        /* not JSON: fall through */
      }
      const err = body && typeof body === "object" ? body.error : null;
      if (err && typeof err === "object" && err.message) {
        return new ApiError(response.status, err.code || "error", String(err.message), err.field);
      }
      const text = response.statusText || "request failed";
      return new ApiError(response.status, `http_${response.status}`, text, null);
    }
  }

  function apiKey() {
    return $("api-key").value.trim();
  }

  async function api(path, { method = "GET", body = undefined, headers = {} } = {}) {
    const h = new Headers(headers);
    const key = apiKey();
    if (key) h.set("X-API-Key", key);
    let response;
    try {
      response = await fetch(path, { method, body, headers: h });
    } catch (e) {
      throw new ApiError(0, "network_error", `The service could not be reached (${e.message}).`);
    }
    if (!response.ok) throw await ApiError.from(response);
    return response;
  }

  function showError(err) {
    const box = $("error");
    if (err instanceof ApiError) {
      $("error-title").textContent = err.status ? `${err.status} ${err.code}` : err.code;
      $("error-message").textContent = err.field
        ? `${err.message} (field: ${err.field})`
        : err.message;
    } else {
      $("error-title").textContent = "Error";
      $("error-message").textContent = String(err && err.message ? err.message : err);
    }
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
  }

  // Runs an action from a button: disables it meanwhile and reports any failure.
  async function guarded(button, statusEl, busyText, fn) {
    clearError();
    if (button) button.disabled = true;
    if (statusEl) statusEl.textContent = busyText;
    try {
      await fn();
    } catch (err) {
      if (statusEl) statusEl.textContent = "";
      showError(err);
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- small helpers

  function formatBytes(n) {
    if (n == null || Number.isNaN(n)) return "?";
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  }

  function formatMs(ms) {
    if (ms < 0.1) return "<0.1 ms";  // a result found in the replica's memory
    return ms < 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(0)} ms`;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  function fillFacts(dl, pairs) {
    dl.replaceChildren();
    for (const [k, v] of pairs) {
      if (v === undefined || v === null || v === "") continue;
      dl.append(el("dt", { text: k }), el("dd", { text: String(v) }));
    }
  }

  // POSIX-shell single quoting, for the curl command.
  function shq(s) {
    return `'${String(s).replace(/'/g, `'\\''`)}'`;
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  // ---------------------------------------------------------------- API key

  function initApiKey() {
    const input = $("api-key");
    input.value = localStorage.getItem(KEY_STORAGE) || "";
    input.addEventListener("input", () => {
      const v = input.value.trim();
      if (v) localStorage.setItem(KEY_STORAGE, v);
      else localStorage.removeItem(KEY_STORAGE);
      renderCode();
    });
  }

  // ---------------------------------------------------------------- the image

  function recentList() {
    try {
      const list = JSON.parse(localStorage.getItem(RECENT_STORAGE) || "[]");
      return Array.isArray(list) ? list : [];
    } catch (_) {
      return [];
    }
  }

  function remember(entry) {
    const list = recentList().filter((r) => r.id !== entry.id);
    list.unshift(entry);
    localStorage.setItem(RECENT_STORAGE, JSON.stringify(list.slice(0, RECENT_MAX)));
    renderRecent();
  }

  function renderRecent() {
    const select = $("recent");
    const current = state.source ? state.source.id : "";
    select.replaceChildren(el("option", { value: "", text: "—" }));
    for (const r of recentList()) {
      const label = `${r.name || r.id} · ${r.width}×${r.height} ${r.format || ""}`;
      const opt = el("option", { value: r.id, text: label });
      if (r.id === current) opt.selected = true;
      select.append(opt);
    }
  }

  // Makes `source` the current image: shows it, loads its info, resets the AI view.
  async function setSource(source, blob) {
    if (state.source && state.source.url) URL.revokeObjectURL(state.source.url);
    source.url = URL.createObjectURL(blob);
    state.source = source;
    const img = $("original-img");
    await loadImage(img, source.url);
    img.hidden = false;
    $("compare-original").src = source.url;
    const caption = `${source.name} · ${source.width} × ${source.height} · ${formatBytes(source.bytes)}`;
    $("original-caption").textContent = caption;
    $("compare-original-caption").textContent = `Original · ${caption}`;
    $("compare").hidden = true;
    $("result-actions").hidden = true;
    $("ai-result").hidden = true;
    $("ai-status").textContent = "";
    renderRecent();
    renderCode();
    await loadInfo(source.id);
    drawHistogram(img);
  }

  function loadImage(img, url) {
    return new Promise((resolve, reject) => {
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("the browser could not display this image"));
      img.src = url;
    });
  }

  // A local file: upload it (so it has an id and shows up in "previous uploads").
  async function pickFile(file) {
    await guarded(null, $("source-status"), `Uploading ${file.name}…`, async () => {
      const form = new FormData();
      form.append("file", file);
      const record = await (await api(`${API}/upload`, { method: "POST", body: form })).json();
      const source = {
        file,
        name: file.name || "image",
        id: record.id,
        width: record.width,
        height: record.height,
        format: record.format,
        bytes: record.bytes,
      };
      remember({
        id: record.id,
        name: source.name,
        width: record.width,
        height: record.height,
        format: record.format,
      });
      await setSource(source, file);
      $("source-status").textContent = `Uploaded as ${record.id}.`;
    });
  }

  // An earlier upload: its metadata and bytes come from the service by id.
  async function pickRecent(id) {
    if (!id) return;
    await guarded(null, $("source-status"), "Loading…", async () => {
      const meta = await (await api(`${API}/images/${encodeURIComponent(id)}/meta`)).json();
      const blob = await (await api(`${API}/images/${encodeURIComponent(id)}`)).blob();
      const known = recentList().find((r) => r.id === id);
      const source = {
        file: null,
        name: (known && known.name) || id,
        id,
        width: meta.width,
        height: meta.height,
        format: meta.format,
        bytes: meta.bytes,
      };
      await setSource(source, blob);
      $("source-status").textContent = `Using upload ${id}.`;
    });
  }

  async function loadInfo(id) {
    const info = await (await api(`${API}/image-info?image_id=${encodeURIComponent(id)}`)).json();
    const exif = info.exif || {};
    fillFacts($("facts"), [
      ["Format", info.format],
      ["Dimensions", `${info.width} × ${info.height}`],
      ["Mode", info.mode],
      ["Size", formatBytes(info.bytes)],
      ["Frames", info.frames],
      ["Alpha", info.has_alpha ? "yes" : "no"],
      ...Object.entries(exif).map(([k, v]) => [`EXIF ${k}`, v]),
    ]);
    const a = info.analysis || {};
    const swatches = $("swatches");
    swatches.replaceChildren();
    for (const c of (a.colors && a.colors.dominant) || []) {
      const chip = el("span", { class: "chip", "aria-hidden": "true" });
      chip.style.background = c.hex;
      swatches.append(
        el("li", { title: `${c.hex} (${(c.share * 100).toFixed(1)}%)` }, chip,
          el("span", { text: `${c.hex} ${(c.share * 100).toFixed(0)}%` })),
      );
    }
    const tone = a.tone || {};
    const tex = a.texture || {};
    const comp = a.composition || {};
    const aspect = comp.aspect || {};
    fillFacts($("analysis-facts"), [
      ["Sharpness", tex.sharpness],
      ["Edge density", tex.edge_density],
      ["Entropy", tex.entropy],
      ["Brightness", tone.brightness],
      ["Contrast", tone.contrast],
      ["Aspect", aspect.nearest ? `${aspect.nearest} (${aspect.orientation})` : undefined],
      ["Thirds score", comp.thirds_score],
    ]);
    $("info").hidden = false;
  }

  // The histogram is computed here, from the decoded pixels of a small copy of the image.
  function drawHistogram(img) {
    const side = 256;
    const scale = Math.min(1, side / Math.max(img.naturalWidth, img.naturalHeight));
    const w = Math.max(1, Math.round(img.naturalWidth * scale));
    const h = Math.max(1, Math.round(img.naturalHeight * scale));
    const work = document.createElement("canvas");
    work.width = w;
    work.height = h;
    const wctx = work.getContext("2d", { willReadFrequently: true });
    wctx.drawImage(img, 0, 0, w, h);
    const px = wctx.getImageData(0, 0, w, h).data;
    const bins = { r: new Uint32Array(256), g: new Uint32Array(256), b: new Uint32Array(256), l: new Uint32Array(256) };
    for (let i = 0; i < px.length; i += 4) {
      bins.r[px[i]]++;
      bins.g[px[i + 1]]++;
      bins.b[px[i + 2]]++;
      bins.l[Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2])]++;
    }
    const canvas = $("histogram");
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    let peak = 1;
    for (const k of ["r", "g", "b"]) for (let i = 1; i < 255; i++) peak = Math.max(peak, bins[k][i]);
    const colours = { r: "rgba(239,68,68,0.55)", g: "rgba(34,197,94,0.55)", b: "rgba(59,130,246,0.55)", l: "rgba(30,41,59,0.9)" };
    const bw = canvas.width / 256;
    for (const k of ["r", "g", "b", "l"]) {
      ctx.beginPath();
      ctx.moveTo(0, canvas.height);
      for (let i = 0; i < 256; i++) {
        const y = canvas.height - Math.min(1, bins[k][i] / peak) * (canvas.height - 4);
        ctx.lineTo(i * bw + bw / 2, y);
      }
      ctx.lineTo(canvas.width, canvas.height);
      if (k === "l") {
        ctx.strokeStyle = colours.l;
        ctx.lineWidth = 1.5;
        ctx.stroke();
      } else {
        ctx.fillStyle = colours[k];
        ctx.fill();
      }
    }
  }

  function initSource() {
    const input = $("file-input");
    input.addEventListener("change", () => {
      if (input.files && input.files[0]) pickFile(input.files[0]);
      input.value = ""; // picking the same file again still fires change
    });
    const zone = $("dropzone");
    for (const ev of ["dragenter", "dragover"]) {
      zone.addEventListener(ev, (e) => {
        e.preventDefault();
        zone.classList.add("over");
      });
    }
    for (const ev of ["dragleave", "drop"]) {
      zone.addEventListener(ev, () => zone.classList.remove("over"));
    }
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      const file = e.dataTransfer && e.dataTransfer.files[0];
      if (file) pickFile(file);
    });
    $("recent").addEventListener("change", (e) => pickRecent(e.target.value));
    $("recent-forget").addEventListener("click", () => {
      localStorage.removeItem(RECENT_STORAGE);
      renderRecent();
    });
    renderRecent();
  }

  function requireSource() {
    if (!state.source) throw new Error("Choose an image first.");
    return state.source;
  }

  // The image part of a request: the file itself when picked here, else the upload's id.
  function appendSource(form) {
    const s = requireSource();
    if (s.file) form.append("file", s.file, s.name);
    else form.append("image_id", s.id);
  }

  function curlSource() {
    const s = state.source;
    if (!s) return "-F file=@photo.jpg";
    return s.file ? `-F file=@${shq(s.name)}` : `-F image_id=${shq(s.id)}`;
  }

  // ---------------------------------------------------------------- pipeline builder

  const OP_TITLES = {
    resize: "Resize",
    thumbnail: "Thumbnail",
    crop: "Crop",
    filter: "Filter",
    enhance: "Enhance",
    rotate: "Rotate",
    redact: "Redact",
    convert: "Convert",
  };

  function addStep(op) {
    const uid = state.nextUid++;
    const li = el("li", { class: "step", "data-op": op });
    const title = el("span", { class: "step-title" });
    const up = el("button", { type: "button", class: "icon", text: "↑" });
    const down = el("button", { type: "button", class: "icon", text: "↓" });
    const remove = el("button", { type: "button", class: "icon", text: "✕" });
    li.append(el("div", { class: "step-head" }, title, el("span", { class: "step-tools" }, up, down, remove)));
    const body = $(`tpl-${op}`).content.firstElementChild.cloneNode(true);
    li.append(body);
    // Give each control a unique id and tie its label to it (labels come without `for`).
    for (const field of body.querySelectorAll(".field")) {
      const control = field.querySelector("[data-k]");
      const label = field.querySelector("label");
      if (!control || !label) continue;
      control.id = `step${uid}-${control.dataset.k}`;
      if (!label.contains(control)) label.htmlFor = control.id;
    }
    const step = { uid, op, el: li, title, up, down, remove };
    up.addEventListener("click", () => moveStep(step, -1));
    down.addEventListener("click", () => moveStep(step, 1));
    remove.addEventListener("click", () => {
      state.steps = state.steps.filter((s) => s !== step);
      li.remove();
      renumber();
      renderCode();
    });
    // Sliders show their value; dependent fields show or hide with their selector.
    body.addEventListener("input", (e) => {
      if (e.target.type === "range") {
        const out = e.target.closest(".field").querySelector("output");
        if (out) out.textContent = Number(e.target.value).toFixed(2);
      }
      syncVisibility(step);
      renderCode();
    });
    body.addEventListener("change", () => {
      syncVisibility(step);
      renderCode();
    });
    state.steps.push(step);
    $("steps").append(li);
    syncVisibility(step);
    renumber();
    renderCode();
    return step;
  }

  function moveStep(step, delta) {
    const i = state.steps.indexOf(step);
    const j = i + delta;
    if (j < 0 || j >= state.steps.length) return;
    state.steps.splice(i, 1);
    state.steps.splice(j, 0, step);
    $("steps").replaceChildren(...state.steps.map((s) => s.el));
    renumber();
    renderCode();
    (delta < 0 ? step.up : step.down).focus();
  }

  function renumber() {
    state.steps.forEach((s, i) => {
      const n = i + 1;
      s.title.textContent = `${n}. ${OP_TITLES[s.op]}`;
      s.up.setAttribute("aria-label", `Move step ${n} up`);
      s.down.setAttribute("aria-label", `Move step ${n} down`);
      s.remove.setAttribute("aria-label", `Remove step ${n} (${OP_TITLES[s.op]})`);
      s.up.disabled = i === 0;
      s.down.disabled = i === state.steps.length - 1;
    });
    $("steps-empty").hidden = state.steps.length > 0;
  }

  function syncVisibility(step) {
    const by = step.el.querySelector('[data-k="by"]');
    for (const f of step.el.querySelectorAll("[data-when]")) f.hidden = !by || f.dataset.when !== by.value;
    const name = step.el.querySelector('[data-k="name"]');
    for (const f of step.el.querySelectorAll("[data-when-filter]")) {
      f.hidden = !name || !f.dataset.whenFilter.split(" ").includes(name.value);
    }
  }

  // A step card as the pipeline spec's JSON (only fields that are set and apply).
  function stepSpec(step) {
    const v = (k) => {
      const c = step.el.querySelector(`[data-k="${k}"]`);
      if (!c) return undefined;
      if (c.type === "checkbox") return c.checked;
      return c.value.trim();
    };
    const num = (k) => {
      const s = v(k);
      return s === "" || s === undefined ? undefined : Number(s);
    };
    const spec = { op: step.op };
    if (step.op === "resize") {
      Object.assign(spec, { width: num("width"), height: num("height"), mode: v("mode"), gravity: v("gravity") });
      if (v("upscale")) spec.upscale = true;
    } else if (step.op === "crop") {
      if (v("by") === "aspect") Object.assign(spec, { aspect: v("aspect"), gravity: v("gravity") });
      else Object.assign(spec, { x: num("x"), y: num("y"), width: num("width"), height: num("height") });
    } else if (step.op === "filter") {
      spec.name = v("name");
      if (["blur", "gaussian"].includes(spec.name)) spec.radius = num("radius");
      if (spec.name === "median") spec.size = num("size");
    } else if (step.op === "enhance") {
      for (const k of ["brightness", "contrast", "saturation", "sharpness"]) spec[k] = num(k);
    } else if (step.op === "convert") {
      Object.assign(spec, { format: v("format"), quality: num("quality") });
    } else if (step.op === "thumbnail") {
      Object.assign(spec, { width: num("width"), height: num("height"), mode: v("mode") });
      if (v("smart")) spec.smart = true;
    } else if (step.op === "rotate") {
      spec.degrees = num("degrees");
    } else if (step.op === "redact") {
      Object.assign(spec, { target: v("target"), style: v("style"), strength: num("strength"), padding: num("padding") });
    }
    for (const k of Object.keys(spec)) if (spec[k] === undefined) delete spec[k];
    return spec;
  }

  function pipelineSpec() {
    const spec = { steps: state.steps.map(stepSpec) };
    const fmt = $("out-format").value;
    if (fmt) spec.format = fmt;
    if ($("out-quality-on").checked) spec.quality = Number($("out-quality").value);
    return spec;
  }

  function outputExtension(spec) {
    const convert = [...spec.steps].reverse().find((s) => s.op === "convert");
    const fmt = spec.format || (convert && convert.format) || (state.source && state.source.format) || "jpeg";
    return fmt === "jpeg" ? "jpg" : fmt;
  }

  // The equivalent curl command and JSON, kept in step with the builder.
  function renderCode() {
    const spec = pipelineSpec();
    const json = JSON.stringify(spec);
    const lines = ["curl -sS -f"];
    if (apiKey()) lines.push('-H "X-API-Key: $API_KEY"');
    lines.push(curlSource(), `-F ${shq(`pipeline=${json}`)}`);
    lines.push(`${location.origin}${API}/process -o result.${outputExtension(spec)}`);
    $("curl-code").textContent = lines.join(" \\\n  ");
    $("pipeline-json").textContent = JSON.stringify(spec, null, 2);
    scheduleUrl();
  }

  // ---------------------------------------------------------------- the GET URL

  // SHA-1 and HMAC-SHA1 (RFC 3174, RFC 2104), small and synchronous: the page signs URLs
  // itself, as libthumbor does, and WebCrypto is missing on plain-http origins.
  function sha1(bytes) {
    const rotl = (x, n) => (x << n) | (x >>> (32 - n));
    const padded = new Uint8Array((((bytes.length + 8) >> 6) + 1) * 64);
    padded.set(bytes);
    padded[bytes.length] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 4, bytes.length * 8);
    view.setUint32(padded.length - 8, Math.floor(bytes.length / 0x20000000));
    const h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
    const w = new Array(80);
    for (let off = 0; off < padded.length; off += 64) {
      for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
      for (let i = 16; i < 80; i++) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
      let [a, b, c, d, e] = h;
      for (let i = 0; i < 80; i++) {
        const [f, k] =
          i < 20 ? [(b & c) | (~b & d), 0x5a827999]
          : i < 40 ? [b ^ c ^ d, 0x6ed9eba1]
          : i < 60 ? [(b & c) | (b & d) | (c & d), 0x8f1bbcdc]
          : [b ^ c ^ d, 0xca62c1d6];
        const t = (rotl(a, 5) + f + e + k + w[i]) >>> 0;
        [e, d, c, b, a] = [d, c, rotl(b, 30) >>> 0, a, t];
      }
      h[0] = (h[0] + a) >>> 0;
      h[1] = (h[1] + b) >>> 0;
      h[2] = (h[2] + c) >>> 0;
      h[3] = (h[3] + d) >>> 0;
      h[4] = (h[4] + e) >>> 0;
    }
    const out = new Uint8Array(20);
    const outView = new DataView(out.buffer);
    h.forEach((word, i) => outView.setUint32(i * 4, word));
    return out;
  }

  function hmacSha1(key, message) {
    const block = new Uint8Array(64);
    block.set(key.length > 64 ? sha1(key) : key);
    const inner = new Uint8Array(64 + message.length);
    const outer = new Uint8Array(64 + 20);
    for (let i = 0; i < 64; i++) {
      inner[i] = block[i] ^ 0x36;
      outer[i] = block[i] ^ 0x5c;
    }
    inner.set(message, 64);
    outer.set(sha1(inner), 64);
    return sha1(outer);
  }

  // thumbor's signature of a path: HMAC-SHA1 under the key, URL-safe base64.
  function signPath(key, path) {
    const enc = new TextEncoder();
    const digest = hmacSha1(enc.encode(key), enc.encode(path));
    return btoa(String.fromCharCode(...digest)).replace(/\+/g, "-").replace(/\//g, "_");
  }

  let urlTimer = null;
  let urlSeq = 0;

  function scheduleUrl() {
    clearTimeout(urlTimer);
    urlTimer = setTimeout(renderUrl, 150);
  }

  // The pipeline as a GET URL: the service writes the path (POST /api/v1/url); the page signs
  // it with the key typed here, or shows the unsafe/ form.
  async function renderUrl() {
    const seq = ++urlSeq;
    const code = $("url-code");
    const note = $("url-note");
    const open = $("url-open");
    if (!state.source) {
      code.textContent = "";
      code.dataset.path = "";
      note.textContent = "Choose an image to see its URL.";
      open.disabled = true;
      return;
    }
    const body = JSON.stringify({ image: state.source.id, ...pipelineSpec() });
    let answer;
    try {
      const response = await api(`${API}/url`, {
        method: "POST",
        body,
        headers: { "Content-Type": "application/json" },
      });
      answer = await response.json();
    } catch (err) {
      if (seq !== urlSeq) return;
      code.textContent = "";
      code.dataset.path = "";
      note.textContent = `No GET URL for this pipeline: ${err.message}`;
      open.disabled = true;
      return;
    }
    if (seq !== urlSeq) return;
    const key = $("url-key").value;
    const path = key ? `/${signPath(key, answer.path)}/${answer.path}` : answer.unsafe;
    code.textContent = `${location.origin}${path}`;
    code.dataset.path = path;
    if (key) note.textContent = "Signed with the key above (HMAC-SHA1, thumbor's scheme).";
    else if (answer.unsafe_allowed) note.textContent = "An unsafe/ URL: accepted here; sign it for production.";
    else note.textContent = "This service takes signed URLs only: enter the URL signing key.";
    open.disabled = false;
  }

  // Fetches the image through the GET URL, as a page or a CDN would.
  async function showThroughUrl() {
    const path = $("url-code").dataset.path;
    if (!path) return;
    await guarded($("url-open"), $("url-result-caption"), "Fetching…", async () => {
      const started = performance.now();
      const response = await api(path);
      const blob = await response.blob();
      const roundTrip = performance.now() - started;
      const img = $("url-result-img");
      if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
      const url = URL.createObjectURL(blob);
      img.dataset.url = url;
      $("url-result").hidden = false;
      await loadImage(img, url);
      const type = (blob.type || "").replace("image/", "");
      const cache = response.headers.get("Cache-Control") || "no Cache-Control";
      $("url-result-caption").textContent =
        `Through the URL · ${img.naturalWidth} × ${img.naturalHeight} · ${type} · ` +
        `${formatBytes(blob.size)} · ${formatMs(roundTrip)} · ${cache}`;
    });
  }

  async function runPipeline() {
    const button = $("run-pipeline");
    await guarded(button, $("result-caption"), "Running…", async () => {
      const spec = pipelineSpec();
      const form = new FormData();
      appendSource(form);
      form.append("pipeline", JSON.stringify(spec));
      const started = performance.now();
      const response = await api(`${API}/process`, { method: "POST", body: form });
      const blob = await response.blob();
      const roundTrip = performance.now() - started;
      const img = $("result-img");
      if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
      const url = URL.createObjectURL(blob);
      img.dataset.url = url;
      $("compare").hidden = false;
      await loadImage(img, url);
      const w = response.headers.get("X-Image-Width") || img.naturalWidth;
      const h = response.headers.get("X-Image-Height") || img.naturalHeight;
      // What the request cost the service: the work, or finding the result in the cache.
      const serverMs = response.headers.get("X-Processing-Ms");
      const cached = response.headers.get("X-Cache") === "hit" ? " (cached)" : "";
      const type = (blob.type || "").replace("image/", "");
      const ratio = state.source.bytes ? ` (${Math.round((blob.size / state.source.bytes) * 100)}% of the original)` : "";
      $("result-caption").textContent =
        `Result · ${w} × ${h} · ${type} · ${formatBytes(blob.size)}${ratio} · ` +
        `${serverMs ? `${formatMs(Number(serverMs))} processing${cached}, ` : ""}${formatMs(roundTrip)} round trip`;
      img.dataset.width = w;
      img.dataset.height = h;
      img.dataset.bytes = String(blob.size);
      const link = $("result-download");
      link.href = url;
      link.download = `result.${outputExtension(spec)}`;
      $("result-actions").hidden = false;
    });
  }

  async function copyText(text, button) {
    const done = (msg) => {
      const old = button.textContent;
      button.textContent = msg;
      setTimeout(() => (button.textContent = old), 1200);
    };
    try {
      await navigator.clipboard.writeText(text);
      done("Copied");
    } catch (_) {
      // No clipboard API (insecure origin): select the text so Ctrl+C copies it.
      const pre = $(button.dataset.copy);
      const range = document.createRange();
      range.selectNodeContents(pre);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      done("Selected, press Ctrl+C");
    }
  }

  function initPipeline() {
    $("add-step").addEventListener("click", () => {
      const step = addStep($("add-op").value);
      const first = step.el.querySelector("input, select");
      if (first) first.focus();
    });
    $("clear-steps").addEventListener("click", () => {
      state.steps = [];
      $("steps").replaceChildren();
      renumber();
      renderCode();
    });
    $("out-format").addEventListener("change", renderCode);
    const q = $("out-quality");
    const qOn = $("out-quality-on");
    const syncQuality = () => {
      q.disabled = !qOn.checked;
      $("out-quality-value").textContent = qOn.checked ? q.value : "default";
      renderCode();
    };
    q.addEventListener("input", syncQuality);
    qOn.addEventListener("change", syncQuality);
    $("run-pipeline").addEventListener("click", runPipeline);
    $("url-key").addEventListener("input", scheduleUrl);
    $("url-open").addEventListener("click", showThroughUrl);
    for (const b of document.querySelectorAll("[data-copy]")) {
      b.addEventListener("click", () => copyText($(b.dataset.copy).textContent, b));
    }
    renumber();
    renderCode();
  }

  // ---------------------------------------------------------------- image AI and the overlay

  const OBJECT_COLOURS = ["#f97316", "#a855f7", "#22c55e", "#ef4444", "#3b82f6", "#eab308", "#ec4899"];
  const FACE_COLOUR = "#06b6d4";
  const TEXT_COLOUR = "#facc15";

  // Normalises each endpoint's answer to boxes with a label, a confidence and (OCR) text.
  function itemsOf(kind, body) {
    if (kind === "objects") {
      return (body.detections || []).map((d) => ({
        box: d.box, label: d.label, confidence: d.confidence, colour: OBJECT_COLOURS[d.class_id % OBJECT_COLOURS.length],
      }));
    }
    if (kind === "faces") {
      return (body.faces || []).map((f) => ({ box: f.box, label: "face", confidence: f.confidence, colour: FACE_COLOUR }));
    }
    return (body.blocks || []).map((b) => ({ box: b.box, label: b.text, confidence: b.confidence, colour: TEXT_COLOUR, text: true }));
  }

  function confidenceText(c) {
    return c === null || c === undefined ? "no confidence from this engine" : `confidence ${(c * 100).toFixed(1)}%`;
  }

  async function runAi(kind) {
    const endpoints = { objects: "detect-objects", faces: "detect-faces", ocr: "ocr" };
    const buttons = { objects: "run-objects", faces: "run-faces", ocr: "run-ocr" };
    await guarded($(buttons[kind]), $("ai-status"), "Working…", async () => {
      const form = new FormData();
      appendSource(form);
      if (kind === "objects") form.append("confidence", $("obj-confidence").value);
      if (kind === "faces") form.append("engine", $("face-engine").value);
      if (kind === "ocr") form.append("engine", $("ocr-engine").value);
      const started = performance.now();
      const body = await (await api(`${API}/${endpoints[kind]}`, { method: "POST", body: form })).json();
      const ms = performance.now() - started;
      const items = itemsOf(kind, body);
      showOverlay(kind, items, body);
      const what = { objects: "object", faces: "face", ocr: "text block" }[kind];
      const engine = body.engine || body.model || "";
      $("ai-status").textContent =
        `${items.length} ${what}${items.length === 1 ? "" : "s"} found by ${engine} in ${ms.toFixed(0)} ms.`;
    });
  }

  function showOverlay(kind, items, body) {
    const img = $("original-img");
    const canvas = $("overlay");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    // Boxes are in the upright image's pixels; the browser also shows the image upright.
    const sx = body.width ? canvas.width / body.width : 1;
    const sy = body.height ? canvas.height / body.height : 1;
    for (const it of items) {
      it.rect = { x: it.box.x1 * sx, y: it.box.y1 * sy, w: (it.box.x2 - it.box.x1) * sx, h: (it.box.y2 - it.box.y1) * sy };
    }
    state.overlay = { img, items, kind, active: -1 };
    canvas.dataset.kind = kind;
    canvas.dataset.boxes = String(items.length);
    canvas.setAttribute("aria-label", `The image with ${items.length} box${items.length === 1 ? "" : "es"} drawn`);
    drawOverlay();

    const list = $("ai-list");
    list.replaceChildren();
    items.forEach((it, i) => {
      const li = el("li", { tabindex: "0", "data-index": String(i) });
      const dot = el("span", { class: "dot", "aria-hidden": "true" });
      dot.style.background = it.colour;
      li.append(dot, el("span", { class: "ai-label", text: it.label }),
        el("span", { class: "ai-conf", text: it.confidence == null ? "" : `${(it.confidence * 100).toFixed(0)}%` }));
      li.dataset.box = [it.box.x1, it.box.y1, it.box.x2, it.box.y2].join(",");
      const show = () => setActive(i, true);
      li.addEventListener("mouseenter", show);
      li.addEventListener("focus", show);
      li.addEventListener("mouseleave", () => setActive(-1));
      li.addEventListener("blur", () => setActive(-1));
      list.append(li);
    });
    if (!items.length) list.append(el("li", { class: "hint", text: "Nothing found." }));
    $("ocr-text-wrap").hidden = kind !== "ocr";
    if (kind === "ocr") $("ocr-text").textContent = body.text || "";
    $("ai-result").hidden = false;
  }

  function drawOverlay() {
    const o = state.overlay;
    if (!o) return;
    const canvas = $("overlay");
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(o.img, 0, 0, canvas.width, canvas.height);
    const line = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 300));
    const font = Math.max(12, Math.round(Math.max(canvas.width, canvas.height) / 40));
    o.items.forEach((it, i) => {
      const { x, y, w, h } = it.rect;
      const active = i === o.active;
      if (it.text) {
        // OCR: highlight the words like a marker pen.
        ctx.fillStyle = active ? "rgba(250,204,21,0.55)" : "rgba(250,204,21,0.3)";
        ctx.fillRect(x, y, w, h);
      }
      ctx.lineWidth = active ? line * 2 : line;
      ctx.strokeStyle = it.colour;
      ctx.strokeRect(x, y, w, h);
      if (!it.text) {
        // A label tag above (or inside, at the top edge) the box.
        ctx.font = `600 ${font}px system-ui, sans-serif`;
        const tw = ctx.measureText(it.label).width + 8;
        const ty = y - font - 6 >= 0 ? y - font - 6 : y;
        ctx.fillStyle = it.colour;
        ctx.fillRect(x, ty, tw, font + 6);
        ctx.fillStyle = "#0b1020";
        ctx.fillText(it.label, x + 4, ty + font);
      }
    });
  }

  // Highlights item `i` (or none) and shows its tooltip; `atBox` places it at the box (keyboard).
  function setActive(i, atBox = false, clientX = 0, clientY = 0) {
    const o = state.overlay;
    if (!o) return;
    o.active = i;
    drawOverlay();
    for (const li of $("ai-list").children) li.classList.toggle("active", li.dataset.index === String(i));
    const tip = $("tooltip");
    if (i < 0) {
      tip.hidden = true;
      return;
    }
    const it = o.items[i];
    tip.textContent = `${it.label} — ${confidenceText(it.confidence)}`;
    tip.hidden = false;
    const canvas = $("overlay");
    const rect = canvas.getBoundingClientRect();
    const wrap = $("overlay-wrap").getBoundingClientRect();
    let left;
    let top;
    if (atBox) {
      left = rect.left - wrap.left + (it.rect.x / canvas.width) * rect.width;
      top = rect.top - wrap.top + ((it.rect.y + it.rect.h) / canvas.height) * rect.height + 6;
    } else {
      left = clientX - wrap.left + 12;
      top = clientY - wrap.top + 12;
    }
    // Keep the tooltip inside the image's frame.
    left = Math.max(0, Math.min(left, wrap.width - tip.offsetWidth));
    top = Math.max(0, Math.min(top, wrap.height - tip.offsetHeight));
    tip.style.left = `${left}px`;
    tip.style.top = `${top}px`;
  }

  // The smallest box under the pointer wins (a face inside a person, a word inside a line).
  function hitTest(e) {
    const o = state.overlay;
    if (!o) return -1;
    const canvas = $("overlay");
    const rect = canvas.getBoundingClientRect();
    const x = ((e.clientX - rect.left) * canvas.width) / rect.width;
    const y = ((e.clientY - rect.top) * canvas.height) / rect.height;
    let best = -1;
    let bestArea = Infinity;
    o.items.forEach((it, i) => {
      const r = it.rect;
      if (x >= r.x && x <= r.x + r.w && y >= r.y && y <= r.y + r.h && r.w * r.h < bestArea) {
        best = i;
        bestArea = r.w * r.h;
      }
    });
    return best;
  }

  function initAi() {
    $("run-objects").addEventListener("click", () => runAi("objects"));
    $("run-faces").addEventListener("click", () => runAi("faces"));
    $("run-ocr").addEventListener("click", () => runAi("ocr"));
    const conf = $("obj-confidence");
    conf.addEventListener("input", () => ($("obj-confidence-value").textContent = Number(conf.value).toFixed(2)));
    const canvas = $("overlay");
    canvas.addEventListener("mousemove", (e) => {
      const i = hitTest(e);
      if (i !== (state.overlay ? state.overlay.active : -1) || i >= 0) setActive(i, false, e.clientX, e.clientY);
    });
    canvas.addEventListener("mouseleave", () => setActive(-1));
  }

  // ---------------------------------------------------------------- batch tasks

  async function submitBatch() {
    await guarded($("batch-submit"), $("batch-counts"), "Submitting…", async () => {
      const form = new FormData();
      const files = $("batch-files").files || [];
      for (const f of files) form.append("files", f, f.name);
      let count = files.length;
      if ($("batch-current").checked && state.source) {
        form.append("image_ids", state.source.id);
        count++;
      }
      if (!count) throw new Error("Choose files for the batch, or include the current image.");
      const base = $("batch-use-pipeline").checked ? pipelineSpec() : { steps: [] };
      for (const box of document.querySelectorAll(".batch-ai:checked")) base.steps.push({ op: box.value });
      form.append("pipeline", JSON.stringify(base));
      const response = await api(`${API}/batch`, {
        method: "POST",
        body: form,
        headers: { "Idempotency-Key": uuid() },
      });
      const body = await response.json();
      if (!body || !body.task_id) throw new Error("The service accepted the batch but sent no task_id.");
      followTask(body.task_id, body.url, body);
    });
  }

  function followTask(id, url, first) {
    stopPolling();
    const t = { id, url: url || `${API}/tasks/${encodeURIComponent(id)}`, timer: null, delay: 500, failures: 0 };
    t.body = first;
    t.abort = new AbortController();
    state.task = t;
    $("batch-task").hidden = false;
    $("batch-id").textContent = `Task ${id}`;
    $("batch-cancel").disabled = false;
    renderTask(first);
    // Server-Sent Events first; if the stream cannot be had (an old service, a proxy that
    // buffers), poll instead.
    followEvents(t).catch(() => {
      if (state.task === t) schedulePoll();
    });
  }

  function stopPolling() {
    if (!state.task) return;
    if (state.task.timer) clearTimeout(state.task.timer);
    if (state.task.abort) state.task.abort.abort();
  }

  // GET /tasks/{id}/events read with fetch, not EventSource: EventSource cannot send the
  // X-API-Key header. The service closes a stream after a while (under Serve's request
  // timeout); we reconnect with Last-Event-ID, as EventSource would.
  async function followEvents(t) {
    let lastId = null;
    while (state.task === t) {
      const headers = new Headers(lastId ? { "Last-Event-ID": lastId } : {});
      const key = apiKey();
      if (key) headers.set("X-API-Key", key);
      const response = await fetch(`${t.url}/events`, { headers, signal: t.abort.signal });
      if (!response.ok || !response.body) throw await ApiError.from(response);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = parseEvent(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (event.id) lastId = event.id;
          if (event.name === "item") applyItem(t, event.data);
          if (event.name === "end") {
            renderTask(event.data);
            $("batch-cancel").disabled = true;
            return;
          }
        }
      }
    }
  }

  function parseEvent(block) {
    const event = { name: "", id: null, data: null };
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event.name = line.slice(7);
      else if (line.startsWith("id: ")) event.id = line.slice(4);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (data.length) event.data = JSON.parse(data.join("\n"));
    return event;
  }

  // An item event: that item and the task's progress, into the task last shown.
  function applyItem(t, item) {
    const body = t.body || { items: [] };
    const items = (body.items || []).slice();
    const at = items.findIndex((i) => i.index === item.index);
    if (at >= 0) items[at] = item;
    else items.push(item);
    t.body = { ...body, items, progress: item.progress || body.progress, status: "running" };
    renderTask(t.body);
  }

  function schedulePoll() {
    const t = state.task;
    t.timer = setTimeout(async () => {
      try {
        const body = await (await api(t.url)).json();
        t.failures = 0;
        renderTask(body);
        if (TERMINAL.has(body.status)) {
          $("batch-cancel").disabled = true;
          return;
        }
      } catch (err) {
        // A few failed polls in a row (service restarting, say) end the watch with the error.
        t.failures++;
        if (t.failures >= 5) {
          showError(err);
          $("batch-cancel").disabled = true;
          return;
        }
      }
      t.delay = Math.min(t.delay * 1.5, 3000); // back off while it runs
      if (state.task === t) schedulePoll();
    }, t.delay);
  }

  function renderTask(body) {
    if (!body) return;
    // progress.done counts every item that ended (succeeded, failed or cancelled).
    const p = body.progress || {};
    const total = Number(p.total) || 0;
    const done = Math.min(Number(p.done) || 0, total);
    const failed = Number(p.failed) || 0;
    $("batch-status").textContent = body.status || "?";
    $("batch-status").dataset.status = body.status || "";
    const bar = $("batch-progress");
    bar.max = Math.max(total, 1);
    bar.value = done;
    const ok = p.succeeded === undefined ? "" : `${p.succeeded} succeeded, `;
    $("batch-counts").textContent = `${done} of ${total} done: ${ok}${failed} failed`;
    const list = $("batch-items");
    list.replaceChildren();
    for (const item of body.items || []) {
      const li = el("li", { class: `item ${item.status || ""}` });
      li.append(el("span", { class: "item-status", text: item.status || "?" }));
      if (item.result_url) {
        const a = el("a", { href: item.result_url, target: "_blank", rel: "noopener", text: "result" });
        a.addEventListener("click", (e) => openWithKey(e, item.result_url));
        li.append(a);
      }
      if (item.results) li.append(el("span", { class: "item-results", text: summariseResults(item.results) }));
      if (item.error) {
        const msg = item.error.message || String(item.error);
        li.append(el("span", { class: "item-error", text: item.error.code ? `${item.error.code}: ${msg}` : msg }));
      }
      list.append(li);
    }
  }

  // A one-line summary of an item's AI output, whatever its exact shape.
  function summariseResults(results) {
    const parts = [];
    const visit = (r) => {
      if (!r || typeof r !== "object") return;
      const count = (n, what) => `${n} ${what}${n === 1 ? "" : "s"}`;
      if (Array.isArray(r.detections)) parts.push(count(r.detections.length, "object"));
      if (Array.isArray(r.faces)) parts.push(count(r.faces.length, "face"));
      if (typeof r.text === "string") parts.push(`text: “${r.text.slice(0, 60)}${r.text.length > 60 ? "…" : ""}”`);
    };
    if (Array.isArray(results)) results.forEach(visit);
    else {
      visit(results);
      Object.values(results).forEach(visit);
    }
    return parts.length ? parts.join(", ") : JSON.stringify(results).slice(0, 120);
  }

  // With an API key set a plain link cannot send it: fetch the bytes and open those instead.
  async function openWithKey(e, url) {
    if (!apiKey()) return;
    e.preventDefault();
    try {
      const blob = await (await api(url)).blob();
      window.open(URL.createObjectURL(blob), "_blank", "noopener");
    } catch (err) {
      showError(err);
    }
  }

  async function cancelBatch() {
    const t = state.task;
    if (!t) return;
    await guarded($("batch-cancel"), null, "", async () => {
      const response = await api(t.url, { method: "DELETE" });
      let body = null;
      try {
        body = await response.json();
      } catch (_) {
        /* 204: no body */
      }
      if (body && body.status) renderTask(body);
    });
  }

  function initBatch() {
    $("batch-submit").addEventListener("click", submitBatch);
    $("batch-cancel").addEventListener("click", cancelBatch);
  }

  // ---------------------------------------------------------------- start

  document.addEventListener("DOMContentLoaded", () => {
    $("error-close").addEventListener("click", clearError);
    initApiKey();
    initSource();
    initPipeline();
    initAi();
    initBatch();
    addStep("resize"); // a useful first pipeline: fit into 400 px wide
    document.body.dataset.ready = "true";
  });
})();
