// openfer browser app: photo upload, video jobs and live webcam over this server's /v1 API. No build step.
"use strict";

// Same colours as openfer.report.annotate (distinct for common colour-vision deficiencies).
const COLOURS = {
  neutral: "#8c8c8c", happiness: "#d9a800", surprise: "#56b4e9", sadness: "#0072b2", anger: "#d55e00",
  disgust: "#009e73", fear: "#cc79a7", contempt: "#7f7f2a", other: "#333333",
};
const colour = (name) => COLOURS[name] || COLOURS.other;
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------------- helpers

function apiKey() { return $("api-key").value.trim(); }
function authHeaders() { return apiKey() ? { "X-API-Key": apiKey() } : {}; }

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    const error = new Error(detail);
    error.status = response.status;
    if (response.status === 401) { $("settings").open = true; $("api-key").focus(); }
    throw error;
  }
  return response;
}

function setStatus(id, text, isError = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url; a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

const pct = (p) => `${(100 * p).toFixed(0)}\u00a0%`;  // no line break inside "100 %"

// Words for a face's most likely damage (models with a damage probe, such as default-soft) when it has
// probability 0.5 or more, as the library's damage_note gives them; "" otherwise.
const DAMAGE_WORDS = { eyes: "eyes covered", mouth: "mouth covered", detail: "low detail" };
function damageNote(face) {
  const kinds = Object.entries(face.damage || {}).filter(([k]) => k in DAMAGE_WORDS).sort((a, b) => b[1] - a[1]);
  return kinds.length && kinds[0][1] >= 0.5 ? `, ${DAMAGE_WORDS[kinds[0][0]]}` : "";
}

// One list item per face: its label, then a bar per class (text too, for screen readers).
function renderFaces(listId, faces) {
  const list = $(listId);
  list.replaceChildren();
  faces.forEach((face, i) => {
    const li = document.createElement("li");
    const who = face.face_id !== undefined && face.face_id !== null ? `Person ${face.face_id}` : `Face ${i}`;
    const title = document.createElement("strong");
    title.textContent = `${who}: ${face.expression} (${pct(face.probabilities[face.expression])}${damageNote(face)})`;
    li.appendChild(title);
    const bars = document.createElement("div");
    bars.className = "bars";
    const entries = Object.entries(face.probabilities).sort((a, b) => b[1] - a[1]);
    for (const [name, p] of entries) {
      const label = document.createElement("span"); label.textContent = name;
      const bar = document.createElement("span"); bar.className = "bar"; bar.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.style.width = `${(100 * p).toFixed(1)}%`; fill.style.background = colour(name);
      bar.appendChild(fill);
      const value = document.createElement("span"); value.className = "pct"; value.textContent = pct(p);
      bars.append(label, bar, value);
    }
    li.appendChild(bars);
    list.appendChild(li);
  });
}

// A box and a label for each face, as elements in `layer` (laid over the picture) placed in % of the picture's
// width x height pixels: they stay on the faces at any displayed size, and the labels stay readable text.
function placeBoxes(layer, faces, width, height) {
  layer.replaceChildren();
  const labels = [];
  faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = face.box;
    const box = document.createElement("div");
    box.className = "face-box";
    Object.assign(box.style, { left: `${100 * x1 / width}%`, top: `${100 * y1 / height}%`,
                               width: `${100 * (x2 - x1) / width}%`, height: `${100 * (y2 - y1) / height}%` });
    box.style.setProperty("--c", colour(face.expression));
    const who = face.face_id !== undefined && face.face_id !== null ? `#${face.face_id}` : `#${i}`;
    const label = document.createElement("span");
    label.className = "face-label";
    label.textContent = `${who} ${face.expression} ${pct(face.probabilities[face.expression])}`;
    label.title = label.textContent;
    box.appendChild(label);
    layer.appendChild(box);
    fitLabel(layer, label, labels);
    labels.push(label.getBoundingClientRect());
  });
}

// Place a label inside the picture and clear of the earlier labels: in full above or below its box, else shortened
// to the face's number (the list has the rest) above, below or inside its box's top edge, else right-aligned.
function fitLabel(layer, label, earlier) {
  const area = layer.getBoundingClientRect(), full = label.textContent, short = full.split(" ")[0];
  const fits = (r) => r.left >= area.left - 0.5 && r.top >= area.top - 0.5 && r.right <= area.right + 0.5 &&
    r.bottom <= area.bottom + 0.5 && !earlier.some((o) => r.left < o.right && o.left < r.right &&
                                                          r.top < o.bottom && o.top < r.bottom);
  const places = [[full, ""], [full, "below"], [short, ""], [short, "below"], [short, "inside"], [full, "right"],
                  [full, "below right"], [short, "right"], [short, "below right"], [short, "inside right"]];
  for (const [text, place] of places) {
    label.textContent = text;
    label.className = `face-label ${place}`;
    if (fits(label.getBoundingClientRect())) return;
  }
  label.className = "face-label inside";  // nowhere clear: on the box itself
}

// A blank time chart on ``canvas`` (sized for the screen): X maps seconds t0..t1 across, Y maps 0..1 up; ``paint``
// draws under the grid; ``ticks`` are [value 0..1, label] pairs of horizontal lines.
function timeChart(canvas, t0, t1, ticks, paint = null) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 600, h = canvas.clientHeight || 160;
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
  const left = 34, right = 8, top = 8, bottom = 20;
  const X = (t) => left + (w - left - right) * (t1 > t0 ? (t - t0) / (t1 - t0) : 0);
  const Y = (v) => top + (h - top - bottom) * (1 - v);
  if (paint) paint(ctx, X, Y);
  ctx.strokeStyle = "#bbb"; ctx.lineWidth = 1; ctx.fillStyle = "#333"; ctx.font = "11px system-ui, sans-serif";
  for (const [v, label] of ticks) {
    ctx.beginPath(); ctx.moveTo(left, Y(v)); ctx.lineTo(w - right, Y(v)); ctx.stroke();
    ctx.fillText(label, 2, Y(v) + 4);
  }
  ctx.fillText(`${t0.toFixed(1)} s`, left, h - 5);
  const end = `${t1.toFixed(1)} s`;
  ctx.fillText(end, w - right - ctx.measureText(end).width, h - 5);
  return { ctx, X, Y };
}

// A line chart of each class's probability over time for one person.
function drawChart(canvas, series, classes, t0, t1) {
  const { ctx, X, Y } = timeChart(canvas, t0, t1, [0, 0.5, 1].map((p) => [p, `${p * 100}%`]));
  for (const name of classes) {
    ctx.strokeStyle = colour(name); ctx.lineWidth = 2; ctx.beginPath();
    let started = false, last = null;
    for (const point of series) {
      const p = point.p[name];
      if (p === undefined || p === null) { started = false; continue; }
      if (started && last !== null && point.t - last > 1.5) started = false;  // a gap: the person was not seen
      if (started) ctx.lineTo(X(point.t), Y(p)); else ctx.moveTo(X(point.t), Y(p));
      started = true; last = point.t;
    }
    ctx.stroke();
  }
}

function legend(classes) {
  const div = document.createElement("div");
  div.className = "legend";
  for (const name of classes) {
    const s = document.createElement("span");
    s.textContent = name; s.style.setProperty("--swatch", colour(name));
    div.appendChild(s);
  }
  return div;
}

// Charts for every person: series = Map(person -> [{t, p: {class: prob}}]).
function renderCharts(containerId, seriesByPerson, classes, t0, t1) {
  const box = $(containerId);
  const ids = [...seriesByPerson.keys()].sort((a, b) => a - b);
  if (!box.querySelector(".legend") && classes.length) box.appendChild(legend(classes));
  for (const id of ids) {
    let canvas = box.querySelector(`canvas[data-person="${id}"]`);
    if (!canvas) {
      const heading = document.createElement("h4"); heading.textContent = `Person ${id}`;
      canvas = document.createElement("canvas"); canvas.dataset.person = String(id);
      canvas.setAttribute("role", "img");
      box.append(heading, canvas);
    }
    const series = seriesByPerson.get(id);
    const lastPoint = series[series.length - 1];
    const top = lastPoint ? Object.entries(lastPoint.p).sort((a, b) => b[1] - a[1])[0] : null;
    canvas.setAttribute("aria-label", `Person ${id}: probability of each expression over time` +
      (top ? `; at ${lastPoint.t.toFixed(1)} s mostly ${top[0]} (${pct(top[1])})` : ""));
    drawChart(canvas, series, classes, t0, t1);
    canvas.dataset.t0 = String(t0); canvas.dataset.t1 = String(t1);
  }
}

// ---------------------------------------------------------------------------------------------------- tabs

function selectTab(tab) {
  for (const t of document.querySelectorAll('[role="tab"]')) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  tab.focus();
}

function setupTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (step) { e.preventDefault(); selectTab(tabs[(i + step + tabs.length) % tabs.length]); }
      if (e.key === "Home") { e.preventDefault(); selectTab(tabs[0]); }
      if (e.key === "End") { e.preventDefault(); selectTab(tabs[tabs.length - 1]); }
    });
  });
}

// ---------------------------------------------------------------------------------------------------- photo

let photoResult = null;

async function analyzePhoto(file) {
  if (!file) return;
  setStatus("photo-status", `Analysing ${file.name}…`);
  $("photo-download").disabled = true;
  const body = new FormData();
  body.append("file", file);
  try {
    const result = await api("/v1/analyze", { method: "POST", body }).then((r) => r.json());
    photoResult = { file: file.name, ...result };
    const canvas = $("photo-canvas");
    canvas.width = result.width; canvas.height = result.height;
    const ctx = canvas.getContext("2d");
    try {  // the server reads more formats (16-bit, TIFF...) than some browsers show: then boxes on grey
      const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
      ctx.drawImage(bitmap, 0, 0, result.width, result.height);
    } catch (e) {
      ctx.fillStyle = "#d0d0d0"; ctx.fillRect(0, 0, result.width, result.height);
    }
    $("photo-stage").hidden = false;
    placeBoxes($("photo-boxes"), result.faces, result.width, result.height);
    canvas.setAttribute("aria-label", `${file.name} with ${result.num_faces} face(s) marked`);
    renderFaces("photo-faces", result.faces);
    setStatus("photo-status", result.num_faces === 0 ? "No face found in this photo." :
      `${result.num_faces} face${result.num_faces > 1 ? "s" : ""} found ` +
      `(${result.faces.map((f) => f.expression).join(", ")}) in ${result.seconds.toFixed(2)} s.`);
    $("photo-download").disabled = false;
  } catch (e) {
    $("photo-stage").hidden = true;
    $("photo-faces").replaceChildren();
    setStatus("photo-status", `Could not analyse ${file.name}: ${e.message}`, true);
  }
}

function setupPhoto() {
  $("photo-input").addEventListener("change", (e) => analyzePhoto(e.target.files[0]));
  window.addEventListener("resize", () => {  // labels: above or below, full or short, for the new size
    if (photoResult && !$("photo-stage").hidden) {
      placeBoxes($("photo-boxes"), photoResult.faces, photoResult.width, photoResult.height);
    }
  });
  $("photo-download").addEventListener("click", () => {
    if (photoResult) saveBlob(new Blob([JSON.stringify(photoResult, null, 2)], { type: "application/json" }),
                              "openfer-photo.json");
  });
  const panel = $("panel-photo");
  panel.addEventListener("dragover", (e) => e.preventDefault());
  panel.addEventListener("drop", (e) => { e.preventDefault(); analyzePhoto(e.dataTransfer.files[0]); });
}

// ---------------------------------------------------------------------------------------------------- video

let currentJob = null;

async function uploadVideo(file) {
  if (!file) return;
  if (currentJob) await deleteJob(true);
  $("video-results").hidden = true;
  $("video-charts").replaceChildren();
  clearJobVideo();
  const body = new FormData();
  body.append("file", file);
  const fps = $("video-fps").value;
  if (fps) body.append("fps", fps);
  if ($("video-audio").checked) body.append("audio", "true");
  if ($("video-reid").checked) body.append("reid", "true");
  setStatus("video-status", `Uploading ${file.name}…`);
  const progress = $("video-progress");
  progress.hidden = false; progress.removeAttribute("value");
  try {
    const job = await api("/v1/jobs", { method: "POST", body }).then((r) => r.json());
    currentJob = job.id;
    await pollJob(job.id);
  } catch (e) {
    progress.hidden = true;
    setStatus("video-status", `Could not analyse ${file.name}: ${e.message}`, true);
  }
}

async function pollJob(id) {
  const progress = $("video-progress");
  for (;;) {
    if (currentJob !== id) return;
    const job = await api(`/v1/jobs/${id}`).then((r) => r.json());
    if (job.progress !== null) progress.value = job.progress; else progress.removeAttribute("value");
    if (job.state === "queued") setStatus("video-status", "Waiting for the analyser…");
    if (job.state === "running") {
      setStatus("video-status", `Analysing: ${job.frames}${job.expected_frames ? " of " + job.expected_frames : ""} ` +
        `frames, ${job.tracks} ${job.tracks === 1 ? "person" : "people"} so far.`);
    }
    if (job.state === "failed") {
      progress.hidden = true;
      setStatus("video-status", `The analysis failed: ${job.error}`, true);
      return;
    }
    if (job.state === "done") {
      progress.value = 1;
      const when = new Date(job.expires * 1000).toLocaleTimeString();
      setStatus("video-status", `Done: ${job.frames} frames, ${job.faces} faces, ${job.tracks} ` +
        `${job.tracks === 1 ? "person" : "people"}. Results are deleted at ${when}.` +
        (job.problems.length ? ` Problems: ${job.problems.slice(0, 3).join("; ")}` : ""));
      $("video-results").hidden = false;
      for (const b of $("video-downloads").querySelectorAll("button[data-kind]")) b.disabled = !(b.dataset.kind in job.results);
      await chartJob(job);
      if ("video" in job.results) await showJobVideo(job);
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function chartJob(job) {
  const text = await api(job.results.jsonl).then((r) => r.text());
  const series = new Map(), voice = new Map();
  let classes = [], t1 = 0;
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const row = JSON.parse(line);
    t1 = Math.max(t1, row.timestamp);
    if (row.voice_speech !== undefined && row.voice_speech !== null && !voice.has(row.timestamp)) {
      voice.set(row.timestamp, { t: row.timestamp, speech: row.voice_speech, arousal: row.voice_arousal });
    }
    if (!row.success || row.face_id < 0) continue;
    const p = {};
    for (const [k, v] of Object.entries(row)) if (k.startsWith("p_") && v !== null) p[k.slice(2)] = v;
    if (!classes.length) classes = Object.keys(p);
    if (!series.has(row.face_id)) series.set(row.face_id, []);
    series.get(row.face_id).push({ t: row.timestamp, p });
  }
  if (!series.size) $("video-charts").textContent = "No face was found in this video.";
  else renderCharts("video-charts", series, classes, 0, t1);
  renderVoice("video-charts", [...voice.values()].sort((a, b) => a.t - b.t), 0, t1);
}

// The voice under the faces (jobs with "Also analyse the voice"): shaded where someone speaks, and the vocal
// arousal index of each second with speech (z-scored over the recording: 0 is its typical level), drawn within ±2.
function renderVoice(containerId, points, t0, t1) {
  if (!points.length) return;
  const box = $(containerId);
  let canvas = box.querySelector("canvas[data-person='voice']");
  if (!canvas) {
    const heading = document.createElement("h4"); heading.textContent = "Voice: speech and vocal arousal";
    canvas = document.createElement("canvas"); canvas.dataset.person = "voice";
    canvas.setAttribute("role", "img");
    box.append(heading, canvas);
  }
  const spoken = points.filter((p) => p.speech === 1).length / points.length;
  canvas.setAttribute("aria-label", `Voice: speech in ${pct(spoken)} of the analysed time (shaded); line: vocal ` +
    "arousal, 0 = this recording's typical level, higher = more activated");
  const level = (a) => (Math.max(-2, Math.min(2, a)) + 2) / 4;  // arousal -2..+2 -> 0..1
  const speech = (ctx, X, Y) => {
    ctx.fillStyle = "#cfe3f5";
    points.forEach((p, i) => {
      if (p.speech !== 1) return;
      const next = i + 1 < points.length ? points[i + 1].t : t1;
      ctx.fillRect(X(p.t), Y(1), Math.max(1, X(next) - X(p.t)), Y(0) - Y(1));
    });
  };
  const { ctx, X, Y } = timeChart(canvas, t0, t1, [[0, "-2"], [0.5, "0"], [1, "+2"]], speech);
  ctx.strokeStyle = "#b35806"; ctx.lineWidth = 2; ctx.beginPath();
  let started = false;
  for (const p of points) {
    if (p.arousal === null || p.arousal === undefined) { started = false; continue; }
    if (started) ctx.lineTo(X(p.t), Y(level(p.arousal))); else ctx.moveTo(X(p.t), Y(level(p.arousal)));
    started = true;
  }
  ctx.stroke();
  canvas.dataset.t0 = String(t0); canvas.dataset.t1 = String(t1);
}

let videoUrl = null;

// The annotated video plays in the page (fetched with the API key, so a keyed server works too); clicking a chart
// seeks it to that moment.
async function showJobVideo(job) {
  const player = $("video-player");
  try {
    const blob = await api(job.results.video).then((r) => r.blob());
    if (videoUrl) URL.revokeObjectURL(videoUrl);
    videoUrl = URL.createObjectURL(blob);
    player.src = videoUrl;
    player.hidden = false;
    $("video-seek-hint").hidden = false;
  } catch (e) { setStatus("video-status", `The annotated video could not be loaded: ${e.message}`, true); }
}

function clearJobVideo() {
  const player = $("video-player");
  player.pause(); player.removeAttribute("src"); player.hidden = true;
  $("video-seek-hint").hidden = true;
  if (videoUrl) { URL.revokeObjectURL(videoUrl); videoUrl = null; }
}

function seekFromChart(event) {
  const canvas = event.target.closest("canvas[data-person]");
  const player = $("video-player");
  if (!canvas || player.hidden || !canvas.dataset.t1) return;
  const t0 = Number(canvas.dataset.t0), t1 = Number(canvas.dataset.t1);
  const left = 34, right = 8, x = event.offsetX;
  const frac = Math.min(1, Math.max(0, (x - left) / (canvas.clientWidth - left - right)));
  player.currentTime = (t1 - t0) * frac;  // the annotated video starts at the first analysed frame (t0)
  player.play().catch(() => {});
}

async function download(kind) {
  const names = { csv: "rows.csv", jsonl: "rows.jsonl", summary: "summary.json", video: "annotated.mp4",
                  report: "report.html" };
  try {
    const blob = await api(`/v1/jobs/${currentJob}/results/${kind}`).then((r) => r.blob());
    saveBlob(blob, `openfer-${names[kind]}`);
  } catch (e) { setStatus("video-status", `Download failed: ${e.message}`, true); }
}

async function deleteJob(quiet = false) {
  const id = currentJob;
  currentJob = null;
  if (!id) return;
  try { await api(`/v1/jobs/${id}`, { method: "DELETE" }); } catch (e) { if (e.status !== 404) throw e; }
  clearJobVideo();
  if (!quiet) {
    $("video-results").hidden = true; $("video-progress").hidden = true;
    setStatus("video-status", "The video and its results were deleted from the server.");
  }
}

function setupVideo() {
  $("video-input").addEventListener("change", (e) => uploadVideo(e.target.files[0]));
  $("video-form").addEventListener("submit", (e) => e.preventDefault());
  for (const b of $("video-downloads").querySelectorAll("button[data-kind]")) {
    b.addEventListener("click", () => download(b.dataset.kind));
  }
  $("video-delete").addEventListener("click", () => deleteJob(false));
  $("video-charts").addEventListener("click", seekFromChart);
}

// ---------------------------------------------------------------------------------------------------- live

const live = { stream: null, ws: null, timer: null, busy: false, classes: [], history: new Map(), log: [],
               t0: 0, sent: 0, received: 0, lastFaces: [], lastSize: null };
const LIVE_WINDOW_S = 30, LIVE_MAX_SIDE = 640, LIVE_LOG_MAX = 20000;

async function startLive() {
  $("live-start").disabled = true;
  setStatus("live-status", "Asking for the camera…");
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) {
    $("live-start").disabled = false;
    setStatus("live-status", `No camera: ${e.message}. Allow camera access for this page and try again.`, true);
    return;
  }
  const video = $("live-video");
  video.srcObject = live.stream;
  $("live-stage").hidden = false;
  await video.play().catch(() => {});
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/stream`);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  ws.onopen = () => { if (apiKey()) ws.send(JSON.stringify({ api_key: apiKey() })); };
  ws.onmessage = (event) => onLiveMessage(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (event.code === 1008) { $("settings").open = true; }
    if (live.ws === ws) {
      stopLive();
      setStatus("live-status", event.code === 1000 || event.code === 1005 ? "Stopped." :
        `The server closed the stream: ${event.reason || "code " + event.code}`, event.code !== 1000 && event.code !== 1005);
    }
  };
  $("live-stop").disabled = false;
}

function onLiveMessage(msg) {
  if (msg.type === "ready") {
    live.classes = msg.classes; live.t0 = performance.now(); live.history.clear(); live.log = [];
    setStatus("live-status", "Live: analysing your camera.");
    $("live-download").disabled = false;
    sendFrame();
    return;
  }
  live.busy = false;
  if (msg.type === "error") {
    setStatus("live-status", `Frame skipped: ${msg.detail}`, true);
  } else if (msg.type === "result") {
    live.received += 1;
    const t = (performance.now() - live.t0) / 1000;
    live.lastFaces = msg.faces; live.lastSize = [msg.width, msg.height];
    if (live.log.length < LIVE_LOG_MAX) live.log.push({ t: +t.toFixed(3), faces: msg.faces });
    for (const f of msg.faces) {
      if (f.face_id === undefined || f.face_id === null) continue;
      if (!live.history.has(f.face_id)) live.history.set(f.face_id, []);
      const h = live.history.get(f.face_id);
      h.push({ t, p: f.probabilities });
      while (h.length && h[0].t < t - LIVE_WINDOW_S) h.shift();
    }
    drawLiveOverlay();
    renderFaces("live-faces", msg.faces);
    if (live.received % 3 === 0) renderCharts("live-charts", live.history, live.classes, Math.max(0, t - LIVE_WINDOW_S), Math.max(t, 1));
    // Per-frame numbers go to a plain line; the live region only announces changes of state (not 10 times a second).
    const fps = live.received / Math.max(0.001, t);
    $("live-stats").textContent = `${msg.faces.length} face${msg.faces.length === 1 ? "" : "s"}, ` +
      `${fps.toFixed(1)} frames/s, ${msg.ms.toFixed(0)} ms per frame on the server.`;
    if ($("live-status").classList.contains("error")) setStatus("live-status", "Live: analysing your camera.");
  }
  sendFrame();
}

function drawLiveOverlay() {
  if (live.lastSize) placeBoxes($("live-boxes"), live.lastFaces, ...live.lastSize);
}

const grab = document.createElement("canvas");

function sendFrame() {
  const ws = live.ws, video = $("live-video");
  if (!ws || ws.readyState !== WebSocket.OPEN || live.busy) return;
  if (!video.videoWidth) { setTimeout(sendFrame, 50); return; }
  const s = Math.min(1, LIVE_MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
  grab.width = Math.round(video.videoWidth * s); grab.height = Math.round(video.videoHeight * s);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  live.busy = true;
  grab.toBlob((blob) => {
    if (!blob || live.ws !== ws || ws.readyState !== WebSocket.OPEN) { live.busy = false; return; }
    blob.arrayBuffer().then((buf) => { ws.send(buf); live.sent += 1; });
  }, "image/jpeg", 0.8);
}

function stopLive() {
  const ws = live.ws;
  live.ws = null; live.busy = false;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  if (live.stream) for (const track of live.stream.getTracks()) track.stop();
  live.stream = null;
  $("live-start").disabled = false; $("live-stop").disabled = true;
  setStatus("live-status", "Stopped.");
}

function setupLive() {
  $("live-start").addEventListener("click", startLive);
  $("live-stop").addEventListener("click", stopLive);
  $("live-download").addEventListener("click", () => saveBlob(
    new Blob([JSON.stringify({ classes: live.classes, frames: live.log }, null, 1)], { type: "application/json" }),
    "openfer-live.json"));
  window.addEventListener("resize", drawLiveOverlay);  // labels: above or below, full or short, for the new size
}

// ---------------------------------------------------------------------------------------------------- start

document.addEventListener("DOMContentLoaded", () => {
  const key = $("api-key");
  key.value = sessionStorage.getItem("openfer-api-key") || "";
  key.addEventListener("change", () => sessionStorage.setItem("openfer-api-key", key.value));
  setupTabs(); setupPhoto(); setupVideo(); setupLive();
  document.body.dataset.ready = "true";
});
