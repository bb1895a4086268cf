// The side panel of a result: what was asked, seed, timings, metrics, config, versions, files.
import { assetUrl, el, formatBytes, formatNumber, formatSeconds } from "./util.js";

export function infoPanel(r) {
  const panel = el("aside", { class: "info", "aria-label": "result details" });
  if (r.error) panel.append(el("p", { class: "notice error" }, r.error));
  for (const w of r.warnings || []) panel.append(el("p", { class: "notice" }, w));

  const req = Object.entries(r.request || {});
  panel.append(el("h2", {}, "Request"));
  if (req.length) {
    panel.append(el("dl", { class: "kv request" }, req.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, show(v))])));
  } else {
    panel.append(el("p", { class: "muted" }, "no request recorded"));
  }
  const run = [["seed", r.seed], ["backend", r.backend], ["kind", r.kind], ["device", r.device], ["folder", r.id]];
  panel.append(el("dl", { class: "kv run" }, run.filter(([, v]) => v !== undefined && v !== null)
    .flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-key": k }, String(v))])));

  const timings = Object.entries(r.timings || {});
  if (timings.length) {
    panel.append(el("h2", {}, "Timings"));
    const stages = timings.filter(([k]) => k !== "total");
    const total = r.timings.total ?? stages.reduce((a, [, v]) => a + v, 0);
    const max = Math.max(...stages.map(([, v]) => v), 1e-9);
    const rows = stages.map(([k, v]) => el("tr", {},
      el("th", {}, k),
      el("td", { class: "num" }, formatSeconds(v)),
      el("td", { class: "tbar" }, el("span", { style: `width:${(100 * v) / max}%` }))));
    rows.push(el("tr", { class: "total" }, el("th", {}, "total"), el("td", { class: "num" }, formatSeconds(total)), el("td")));
    panel.append(el("table", { class: "timings" }, el("tbody", {}, rows)));
  }

  const metrics = Object.entries(r.metrics || {});
  if (metrics.length) {
    panel.append(el("h2", {}, "Metrics"));
    panel.append(el("table", { class: "metrics" }, el("tbody", {},
      metrics.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "num" }, formatNumber(v)))))));
  }

  const cfg = r.config_text ?? (r.config ? JSON.stringify(r.config, null, 2) : null);
  if (cfg) panel.append(el("details", { class: "config" }, el("summary", {}, "Config"), el("pre", {}, cfg)));
  const versions = Object.entries(r.versions || {});
  if (versions.length) {
    panel.append(el("details", {}, el("summary", {}, "Versions"),
      el("dl", { class: "kv" }, versions.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]))));
  }
  const files = (r.files || []).filter((f) => assetUrl(f.url));
  if (files.length) {
    panel.append(el("details", {}, el("summary", {}, `Files (${files.length})`),
      el("ul", { class: "files" }, files.map((f) => el("li", {},
        el("a", { href: assetUrl(f.url), download: f.name }, f.name), " ", el("span", { class: "muted" }, formatBytes(f.bytes)))))));
  }
  return panel;
}

function show(v) {
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}
