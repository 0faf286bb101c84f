"use strict";
// The live view: one card per camera, fed by one WebSocket. Binary messages are pictures
// (one byte of camera index, then a JPEG); text messages are JSON overlays and stats.
// Controls POST to /api/cameras/<id>/set with the session's CSRF token. Labelling (class
// buttons, the strip of unsure frames, training) polls /api/cameras/<id>/labelling.
// A detector camera's card draws its tracked objects and zones over the picture (SVG, from
// the overlay's `objects` message: no frame is re-encoded per viewer) and edits its zones
// through the same /set as every control.

const session = {csrf: null, cameras: [], controls: []};
const cards = [];

async function start() {
  const response = await fetch("/api/session", {credentials: "same-origin"});
  if (response.status === 401) {
    location.assign("/login");
    return;
  }
  Object.assign(session, await response.json());
  const main = document.getElementById("cameras");
  main.dataset.count = String(session.cameras.length);
  for (const [index, camera] of session.cameras.entries()) {
    cards.push(makeCard(main, index, camera));
  }
  const logout = document.getElementById("logout");
  logout.hidden = !session.password;
  logout.addEventListener("click", async () => {
    await post("/api/logout", {});
    location.assign("/login");
  });
  connect();
  pollLabelling();
  setInterval(pollLabelling, LABEL_POLL_MS);
}

function makeCard(main, index, camera) {
  const node = document.getElementById("camera-template").content.firstElementChild.cloneNode(true);
  node.dataset.camera = camera.id;
  node.dataset.pictures = "0";
  node.querySelector(".camera-id").textContent = `${camera.id} · ${camera.model}`;
  const card = {
    index, camera, node, url: null, stats: [],
    img: node.querySelector(".frame"),
    region: node.querySelector(".region"),
    label: node.querySelector(".label"),
    score: node.querySelector(".score"),
    topK: node.querySelector(".top-k"),
    error: node.querySelector(".control-error"),
    inputs: {},
  };
  buildControls(card, node.querySelector(".controls"));
  if (camera.kind === "detector") setUpZones(card);
  else setUpLabelling(card);
  main.appendChild(node);
  return card;
}

function buildControls(card, form) {
  form.addEventListener("submit", (event) => event.preventDefault());
  for (const field of session.controls) {
    const label = document.createElement("label");
    label.title = field.description;
    const input = document.createElement("input");
    input.name = field.key;
    if (field.type === "bool") {
      input.type = "checkbox";
    } else {
      input.type = "number";
      input.step = field.type === "int" ? "1" : "any";
      if (field.min !== null) input.min = String(field.min);
      if (field.max !== null) input.max = String(field.max);
      if (field.nullable) input.placeholder = "none";
    }
    input.addEventListener("change", () => send(card, field, input));
    label.append(field.key.replace("_", " "), " ", input);
    form.appendChild(label);
    card.inputs[field.key] = input;
  }
}

async function send(card, field, input) {
  let value;
  if (field.type === "bool") value = input.checked;
  else if (input.value === "" && field.nullable) value = null;
  else value = field.type === "int" ? parseInt(input.value, 10) : parseFloat(input.value);
  const response = await post(`${cameraPath(card)}/set`, {[field.key]: value});
  const body = await response.json().catch(() => ({}));
  card.error.textContent = response.ok ? "" : (body.error || `refused (${response.status})`);
  if (response.ok) showConfig(card, body.config, true);
}

function cameraPath(card) {
  return `/api/cameras/${encodeURIComponent(card.camera.id)}`;
}

function post(path, body) {
  return fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": session.csrf},
    body: JSON.stringify(body),
  });
}

function connect() {
  const status = document.getElementById("status");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { status.textContent = "live"; };
  ws.onclose = async () => {
    status.textContent = "disconnected: retrying";
    const check = await fetch("/api/session", {credentials: "same-origin"}).catch(() => null);
    if (check && check.status === 401) location.assign("/login");  // the session has ended
    else setTimeout(connect, 2000);
  };
  ws.onmessage = (event) => {
    if (typeof event.data === "string") onMessage(JSON.parse(event.data));
    else onPicture(event.data);
  };
}

function onPicture(buffer) {
  const card = cards[new Uint8Array(buffer, 0, 1)[0]];
  if (!card) return;
  const url = URL.createObjectURL(new Blob([new Uint8Array(buffer, 1)], {type: "image/jpeg"}));
  const old = card.url;
  card.url = url;
  card.img.onload = () => { if (old) URL.revokeObjectURL(old); };
  card.img.src = url;
  card.node.dataset.pictures = String(Number(card.node.dataset.pictures) + 1);
}

function onMessage(message) {
  const card = cards[message.camera];
  if (!card) return;
  if (message.stats) {
    card.stats = message.stats;
    drawCharts(card);
    return;
  }
  if (card.zones) showDetections(card, message);
  else showClassification(card, message.classification);
  showConfig(card, message.config, false);
  showRegion(card, message.region);
}

function showClassification(card, c) {
  card.label.textContent = c ? c.label : "…";
  card.score.textContent = c ? `${(c.score * 100).toFixed(0)}%` : "";
  card.node.dataset.frame = c ? String(c.frame) : "";
  card.topK.replaceChildren(...(c ? c.top_k : []).map((p) => {
    const item = document.createElement("li");
    item.textContent = `${p.label} ${(p.score * 100).toFixed(0)}%`;
    return item;
  }));
}

function showConfig(card, config, force) {
  for (const [key, value] of Object.entries(config || {})) {
    const input = card.inputs[key];
    if (!input || (!force && document.activeElement === input)) continue;
    if (input.type === "checkbox") input.checked = Boolean(value);
    else input.value = value === null ? "" : String(value);
  }
  card.node.classList.toggle("paused", Boolean(config && config.paused));
  if (config && config.model) {
    card.node.querySelector(".camera-id").textContent = `${card.camera.id} · ${config.model}`;
  }
}

function showRegion(card, region) {
  card.region.hidden = !region;
  if (!region) return;
  const [x, y, w, h] = region;
  Object.assign(card.region.style, {
    left: `${x * 100}%`, top: `${y * 100}%`, width: `${w * 100}%`, height: `${h * 100}%`,
  });
}

const CHARTS = {
  rate: {series: ["fps_classified"], unit: "/s"},
  cpu: {series: ["cpu_pct"], budget: "cpu_budget", unit: "%", floor: 100},
  temp: {series: ["temp_c"], unit: "°C"},
  power: {series: ["power_w"], unit: "W"},
};

function drawCharts(card) {
  for (const canvas of card.node.querySelectorAll("canvas.chart")) {
    const spec = CHARTS[canvas.dataset.chart];
    const value = canvas.parentElement.querySelector(".value");
    const last = card.stats.length ? card.stats[card.stats.length - 1][spec.series[0]] : null;
    value.textContent = last === null || last === undefined ? "n/a" : `${last}${spec.unit}`;
    drawChart(canvas, card.stats, spec);
  }
}

function drawChart(canvas, points, spec) {
  const ctx = canvas.getContext("2d");
  const {width, height} = canvas;
  ctx.clearRect(0, 0, width, height);
  const key = spec.series[0];
  const values = points.map((p) => p[key]).filter((v) => v !== null && v !== undefined);
  const budgets = spec.budget ? points.map((p) => p[spec.budget]).filter((v) => v !== null) : [];
  if (!values.length) return;
  const top = Math.max(...values, ...budgets, 1e-9) * 1.15;
  const bottom = key === "temp_c" ? Math.min(...values) * 0.9 : 0;
  const t0 = points[0].t;
  const span = Math.max(points[points.length - 1].t - t0, 1);
  const x = (p) => ((p.t - t0) / span) * (width - 2) + 1;
  const y = (v) => height - 2 - ((v - bottom) / (top - bottom || 1)) * (height - 4);
  line(ctx, points, key, x, y, "#2a7ab9", []);
  if (spec.budget) line(ctx, points, spec.budget, x, y, "#c0392b", [4, 3]);
}

function line(ctx, points, key, x, y, colour, dash) {
  ctx.beginPath();
  ctx.setLineDash(dash);
  ctx.strokeStyle = colour;
  ctx.lineWidth = 1.5;
  let drawing = false;
  for (const p of points) {
    const v = p[key];
    if (v === null || v === undefined) { drawing = false; continue; }
    if (drawing) ctx.lineTo(x(p), y(v));
    else ctx.moveTo(x(p), y(v));
    drawing = true;
  }
  ctx.stroke();
}

// -- labelling ------------------------------------------------------------------------

const LABEL_POLL_MS = 2000;

function setUpLabelling(card) {
  const node = card.node;
  card.labelling = {
    classes: null,
    buttons: node.querySelector(".class-buttons"),
    strip: node.querySelector(".strip"),
    note: node.querySelector(".label-error"),
  };
  node.querySelector(".new-class").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = event.target.elements.label;
    if (await capture(card, input.value.trim())) input.value = "";
  });
  node.querySelector(".train").addEventListener("click", async () => {
    const response = await post(`${cameraPath(card)}/train`, {});
    if (!await said(card, response, "")) return;  // the status beside the button says more
    showTraining(card, (await response.json()).training);
  });
  node.querySelector(".use-model").addEventListener("click", async (event) => {
    const model = event.target.dataset.model;
    const response = await post(`${cameraPath(card)}/set`, {model});
    if (await said(card, response, `now classifying with ${model}`)) {
      showConfig(card, (await response.json()).config, true);
    }
  });
}

async function said(card, response, ok) {
  const body = response.ok ? null : await response.json().catch(() => ({}));
  card.labelling.note.textContent = response.ok ? ok : (body.error || `refused (${response.status})`);
  return response.ok;
}

async function capture(card, label) {
  const response = await post(`${cameraPath(card)}/set`, {capture: label});
  return said(card, response, `saving the next frame as ${label}`);
}

async function labelDoubt(card, number, label) {
  const response = await post(`${cameraPath(card)}/strip`, {number, label});
  if (await said(card, response, `saved frame ${number} as ${label}`)) pollLabelling();
}

async function pollLabelling() {
  for (const card of cards.filter((c) => c.labelling)) {
    const response = await fetch(`${cameraPath(card)}/labelling`, {credentials: "same-origin"})
      .catch(() => null);
    if (response && response.ok) showLabelling(card, await response.json());
  }
}

function showLabelling(card, state) {
  const l = card.labelling;
  const classes = JSON.stringify(state.classes);
  if (classes !== l.classes) {
    l.classes = classes;
    l.buttons.replaceChildren(...state.classes.map((c) => button(c, () => capture(card, c))));
    l.strip.replaceChildren();  // its buttons name the classes too
  }
  // Frames already shown stay (no new request for their picture); gone ones go.
  const shown = new Map([...l.strip.children].map((f) => [f.dataset.number, f]));
  l.strip.replaceChildren(...state.strip.map(
    (d) => shown.get(String(d.number)) || doubt(card, d, state.classes)));
  showTraining(card, state.training);
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.label = label;
  b.addEventListener("click", onClick);
  return b;
}

function doubt(card, d, classes) {
  const figure = document.createElement("figure");
  figure.dataset.number = String(d.number);
  const img = document.createElement("img");
  img.src = `${cameraPath(card)}/strip/${d.number}`;
  img.alt = `frame the model was unsure of: ${d.label}`;
  const caption = document.createElement("figcaption");
  caption.textContent = `${d.label} ${(d.score * 100).toFixed(0)}%`;
  const buttons = classes.map((c) => button(c, () => labelDoubt(card, d.number, c)));
  figure.append(img, caption, ...buttons);
  return figure;
}

function showTraining(card, t) {
  const node = card.node;
  const mine = t.camera === card.camera.id;
  const progress = node.querySelector(".train-progress");
  const use = node.querySelector(".use-model");
  node.dataset.training = mine ? t.state : "idle";
  node.querySelector(".train").disabled = t.state === "running";
  progress.hidden = !(mine && t.state === "running");
  progress.max = Math.max(t.total, 1);
  progress.value = t.done;
  let text = "";
  if (t.state === "running") text = mine ? `training: ${t.stage} ${t.done}/${t.total}` : `${t.camera} is training`;
  else if (mine && t.state === "done") text = `trained ${t.model}: ${percent(t.accuracy)} right on ${t.accuracy_on} images`;
  else if (mine && t.state === "failed") text = `training failed: ${t.error}`;
  node.querySelector(".train-status").textContent = text;
  const done = mine && t.state === "done";
  use.hidden = !done;
  use.dataset.model = t.model || "";
  for (const kind of ["report", "chart"]) {
    const link = node.querySelector(`.train-${kind}`);
    link.hidden = !(done && t[kind]);
    if (link.hidden) link.removeAttribute("href");
    else link.href = `${cameraPath(card)}/training/${kind}`;
  }
}

function percent(value) {
  return value === null || value === undefined ? "n/a" : `${(value * 100).toFixed(1)}%`;
}


// -- a detector's objects and zones ---------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function setUpZones(card) {
  const node = card.node;
  node.classList.add("detector");
  node.querySelector(".labelling").hidden = true;
  node.querySelector(".top-k").hidden = true;
  node.querySelector(".zones").hidden = false;
  const form = node.querySelector(".zone-form");
  card.zones = {
    list: [], objects: [], draft: null,
    marks: node.querySelector("svg.marks"),
    shapes: node.querySelector("svg.shapes"),
    items: node.querySelector(".zone-list"),
    form, name: form.elements.name,
    note: node.querySelector(".zone-note"),
  };
  node.querySelector(".zone-draw").addEventListener("click", () => drawing(card, []));
  node.querySelector(".zone-cancel").addEventListener("click", () => drawing(card, null));
  form.addEventListener("submit", (event) => { event.preventDefault(); saveZone(card); });
  node.querySelector(".picture").addEventListener("click", (event) => addPoint(card, event));
}

function showDetections(card, message) {
  const z = card.zones;
  const found = message.objects;
  z.objects = found ? found.objects : [];
  card.node.dataset.frame = found ? String(found.frame) : "";
  const counts = Object.entries(found ? found.counts : {}).filter(([, n]) => n > 0);
  card.label.textContent = counts.map(([label, n]) => `${n} ${label}`).join(", ") || "nothing tracked";
  card.score.textContent = "";
  showZones(card, message.zones || []);
}

function showZones(card, list) {
  const z = card.zones;
  if (JSON.stringify(list) !== JSON.stringify(z.list)) {
    z.list = list;
    z.items.replaceChildren(...list.map((zone) => zoneItem(card, zone)));
  }
  drawMarks(card);
}

function zoneItem(card, zone) {
  const item = document.createElement("li");
  item.dataset.zone = zone.name;
  const remove = button("Delete", () => sendZones(card, card.zones.list.filter((z) => z !== zone),
    `deleted ${zone.name}`));
  item.append(`${zone.name} (${zone.points.length} points) `, remove);
  return item;
}

// Boxes and names by percentages in the outer SVG (text keeps its shape); the zones'
// polygons in the inner one, whose 0..1 box is stretched over the picture.
function drawMarks(card) {
  const z = card.zones;
  const polygons = z.list.map((zone) => shape("polygon", {class: "zone", "data-zone": zone.name,
    points: zone.points.map(([x, y]) => `${x},${y}`).join(" ")}));
  const names = z.list.map((zone) => text(zone.points[0], zone.name, "zone-name"));
  if (z.draft) {
    polygons.push(shape("polyline", {class: "draft", points: z.draft.map((p) => p.join(",")).join(" ")}));
  }
  const dots = (z.draft || []).map(([x, y]) => shape("circle", {class: "dot", cx: pct(x), cy: pct(y), r: 4}));
  const boxes = z.objects.flatMap((o) => {
    const [x1, y1, x2, y2] = o.box;
    const rect = shape("rect", {class: "box", "data-id": o.id, "data-label": o.label,
      x: pct(x1), y: pct(y1), width: pct(x2 - x1), height: pct(y2 - y1)});
    const sub = o.sub_label ? ` (${o.sub_label})` : "";
    return [rect, text([x1, y1], `${o.label}${sub} ${(o.score * 100).toFixed(0)}% #${o.id}`, "box-label")];
  });
  z.shapes.replaceChildren(...polygons);
  z.marks.replaceChildren(z.shapes, ...names, ...boxes, ...dots);
}

function shape(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function text([x, y], words, kind) {
  const element = shape("text", {class: kind, x: pct(x), y: pct(y), dx: 3, dy: "1.1em"});
  element.textContent = words;
  return element;
}

function pct(fraction) {
  return `${(fraction * 100).toFixed(2)}%`;
}

// Drawing: null (not drawing), or the points clicked so far, as fractions of the picture.
function drawing(card, draft) {
  const z = card.zones;
  z.draft = draft;
  card.node.classList.toggle("drawing", draft !== null);
  z.form.querySelector(".zone-draw").hidden = draft !== null;
  for (const part of [z.name, ...z.form.querySelectorAll(".zone-save, .zone-cancel")]) {
    part.hidden = draft === null;
  }
  z.note.textContent = draft === null ? "" : "click the picture to place the zone's corners";
  drawMarks(card);
}

function addPoint(card, event) {
  const z = card.zones;
  if (!z.draft) return;
  const r = card.img.getBoundingClientRect();
  const at = (v, start, size) => Math.round(Math.min(Math.max((v - start) / size, 0), 1) * 1e4) / 1e4;
  z.draft.push([at(event.clientX, r.left, r.width), at(event.clientY, r.top, r.height)]);
  z.note.textContent = `${z.draft.length} point${z.draft.length === 1 ? "" : "s"}` +
    (z.draft.length < 3 ? ": at least 3" : ": name it and save");
  drawMarks(card);
}

async function saveZone(card) {
  const z = card.zones;
  const name = z.name.value.trim();
  if (!name || z.draft.length < 3) {
    z.note.textContent = "a zone needs a name and at least 3 points";
    return;
  }
  if (await sendZones(card, [...z.list, {name, points: z.draft}], `saved ${name}`)) {
    z.name.value = "";
    drawing(card, null);
  }
}

// The whole list goes through /set, as `{"zones": [...]}` on MQTT: checked there, or refused
// with its reason.
async function sendZones(card, list, ok) {
  const zones = list.map(({name, points}) => ({name, points}));
  const response = await post(`${cameraPath(card)}/set`, {zones});
  const body = await response.json().catch(() => ({}));
  card.zones.note.textContent = response.ok ? ok : (body.error || `refused (${response.status})`);
  if (response.ok && body.config) showZones(card, body.config.zones);
  return response.ok;
}

start();
