// The gallery: one card per result (prompt, thumbnail, timings, metrics); a card opens the result.
import { KIND_LABELS, assetUrl, availableModes, el, formatNumber, formatSeconds, resultHash } from "./util.js";

export class Gallery {
  constructor(app, index) {
    this.results = index.results;
    const filter = el("input", { type: "search", placeholder: "filter by prompt or folder", "aria-label": "filter", oninput: () => this.filter(filter.value) });
    this.count = el("span", { class: "muted count" });
    this.grid = el("div", { class: "grid" });
    this.node = el("div", { class: "gallery" },
      el("header", { class: "bar" },
        el("h1", {}, "gen3d results"),
        el("span", { class: "muted" }, index.root || ""),
        el("span", { class: "spacer" }), this.count, filter),
      this.grid);
    app.replaceChildren(this.node);
    this.cards = this.results.map((r) => [r, card(r)]);
    this.grid.append(...this.cards.map(([, c]) => c));
    if (!this.results.length) {
      this.grid.append(el("p", { class: "empty" }, "No results here. A result folder holds result.json and any of splats.ply, mesh.glb, points.ply, views/ or frames/."));
    }
    this.filter("");
  }

  filter(text) {
    const t = text.trim().toLowerCase();
    let n = 0;
    for (const [r, c] of this.cards) {
      const hit = !t || `${r.title} ${r.id}`.toLowerCase().includes(t);
      c.hidden = !hit;
      n += hit;
    }
    this.count.textContent = `${n} of ${this.results.length} result${this.results.length === 1 ? "" : "s"}`;
  }

  dispose() {}
}

function card(r) {
  const thumbUrl = r.thumbnail ? assetUrl(r.thumbnail) : null;
  const modes = availableModes(r);
  const thumb = thumbUrl
    ? el("img", { src: thumbUrl, alt: "", loading: "lazy" })
    : el("div", { class: "nothumb" }, modes.map((m) => KIND_LABELS[m]).join(" · ") || "nothing to show");
  const sub = [r.kind, r.backend, r.seed !== null && r.seed !== undefined ? `seed ${r.seed}` : null].filter(Boolean).join(" · ");
  const stats = [];
  if (typeof r.timings?.total === "number") stats.push(el("span", {}, `total ${formatSeconds(r.timings.total)}`));
  for (const [k, v] of Object.entries(r.metrics || {}).slice(0, 3)) stats.push(el("span", {}, `${k} ${formatNumber(v)}`));
  const badges = modes.map((m) => el("span", { class: "badge" }, KIND_LABELS[m]));
  if (r.frames) badges.push(el("span", { class: "badge seq" }, `${r.frames.frames.length} frames`));
  if (r.error) badges.push(el("span", { class: "badge err" }, "result.json unreadable"));
  else if (!r.finished) badges.push(el("span", { class: "badge warn" }, "unfinished"));
  return el("a", { class: "card", href: resultHash(r.id), "data-id": r.id },
    el("div", { class: "thumb" }, thumb),
    el("div", { class: "title", title: r.title }, r.title),
    el("div", { class: "sub muted" }, sub || r.id),
    el("div", { class: "stats" }, stats),
    el("div", { class: "badges" }, badges));
}
