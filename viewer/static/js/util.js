// Small helpers shared by the gallery and the result page: DOM building, data access, formatting.
//
// Data comes either from the server (api/results, data/...) or, in a page written by
// `gen3d view --export`, from window.__GEN3D_EMBED__ = {index, assets: {url: blobURL}}.

const embed = window.__GEN3D_EMBED__ || null;

export const isExport = embed !== null;

// Build an element: el("div", {class: "x", onclick: f}, child, "text", ...). Text is never parsed as
// HTML, so prompts and file names cannot inject markup.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

export async function loadIndex() {
  if (embed) return embed.index;
  const r = await fetch("api/results", { cache: "no-store" });
  if (!r.ok) throw new Error(`the result list could not be loaded (HTTP ${r.status})`);
  return r.json();
}

// The URL to use in the page for a manifest URL (a blob: URL in an exported page).
export function assetUrl(url) {
  if (!embed) return url;
  return embed.assets[url] ?? null;
}

// Fetch a file's bytes; errors say why in words a user can act on (the caller names the file).
export async function fetchBytes(url) {
  const u = assetUrl(url);
  if (!u) throw new Error("the file is not included in this exported page");
  let r;
  try {
    r = await fetch(u, { cache: "no-store" });
  } catch (e) {
    throw new Error(`the file could not be fetched (${e.message}); is the server still running?`);
  }
  if (!r.ok) {
    const why = r.status === 404 ? "the file is missing" : r.statusText;
    throw new Error(`HTTP ${r.status}: ${why}`);
  }
  return new Uint8Array(await r.arrayBuffer());
}

export const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

export function formatNumber(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return v.toPrecision(4).replace(/\.?0+$/, "");
}

export function formatSeconds(s) {
  if (typeof s !== "number") return "";
  if (s < 1) return `${(s * 1000).toFixed(0)} ms`;
  if (s < 120) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const whole = Math.round(s);
  const m = Math.floor(whole / 60);
  return m < 120 ? `${m} min ${whole - 60 * m} s` : `${(s / 3600).toFixed(1)} h`;
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

// Parse "#/r/<id>?mode=mesh&bg=black" into {path: ["r", id], params}.
export function parseHash(hash) {
  const h = hash.replace(/^#/, "");
  const [path, query] = h.split("?", 2);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query || "") };
}

export function resultHash(id, params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null));
  const s = q.toString();
  return `#/r/${encodeURIComponent(id)}${s ? `?${s}` : ""}`;
}

// Which kinds a result can show, in the order the mode buttons list them.
export const KINDS = ["splats", "mesh", "points"];
export const KIND_LABELS = { splats: "Splats", mesh: "Mesh", points: "Points", views: "Views" };

export function availableModes(r) {
  const modes = KINDS.filter((k) => r.assets?.[k] || r.frames?.frames?.some((f) => f.assets?.[k]));
  if (r.views) modes.push("views");
  return modes;
}
