// The result page: the 3D view (or the views), mode buttons, background, screenshot, the timeline
// for time sequences, and the info panel.
//
// For tests and scripts the page reports its state on window.__viewer and sets window.__ready
// once what is on screen is fully drawn (assets loaded, Spark's sort done).
import { infoPanel } from "./info.js";
import { Viewer3D } from "./scene.js";
import { KIND_LABELS, assetUrl, availableModes, el, resultHash, sleep } from "./util.js";

const BACKGROUNDS = { dark: "#1d1f24", grey: "#808080", white: "#ffffff", black: "#000000" };

export class ResultPage {
  constructor(app, r, params, state, { single = false } = {}) {
    this.r = r;
    this.state = state;
    this.modes = availableModes(r);
    this.token = 0;
    this.frame = 0;
    this.playing = false;
    this.bg = BACKGROUNDS[params.get("bg")] ? params.get("bg") : localStorage.getItem("gen3d.bg") || "dark";
    if (!BACKGROUNDS[this.bg]) this.bg = "dark";
    Object.assign(state, { id: r.id, mode: null, frame: null, frameChanges: 0, message: null, shown: null });

    this.buildDom(app, single);
    try {
      this.viewer = new Viewer3D(this.viewport);
    } catch (e) {
      this.viewer = null;
      this.showMessage(`The 3D view needs WebGL2, which this browser does not offer (${e.message}).`, "error");
    }
    this.setBackground(this.bg);
    const images = r.views?.images || [];
    if (this.viewer && this.viewer.setCameras(images, r.views?.camera)) this.camerasToggle.hidden = false;

    const want = params.get("mode");
    const mode = this.modes.includes(want) ? want : this.modes[0];
    const frame = parseInt(params.get("frame") || "0", 10);
    this.frame = Number.isFinite(frame) ? frame : 0;
    this.onKey = (e) => this.key(e);
    window.addEventListener("keydown", this.onKey);
    if (!mode) {
      this.showMessage("This result has nothing to show: no splats.ply, mesh.glb, points.ply, views/ or frames/.", "error");
      this.setReady();
    } else {
      this.setMode(mode);
    }
  }

  buildDom(app, single) {
    const r = this.r;
    this.modeButtons = Object.fromEntries(this.modes.map((m) => [m, el("button", {
      class: "mode", "data-mode": m, "aria-pressed": "false", onclick: () => this.setMode(m),
    }, KIND_LABELS[m])]));
    this.bgButton = el("button", { class: "bg", title: "background colour", onclick: () => this.cycleBackground() });
    this.shotButton = el("button", { class: "shot", title: "save a PNG of the view", onclick: () => this.saveScreenshot() }, "Screenshot");
    this.resetButton = el("button", { class: "reset", title: "frame the object (F)", onclick: () => this.viewer?.frameObject() }, "Reset view");
    const camBox = el("input", { type: "checkbox", onchange: () => this.viewer?.showCameras(camBox.checked) });
    this.camerasToggle = el("label", { class: "toggle", hidden: true }, camBox, " cameras");
    const sizeRange = el("input", { type: "range", min: "0.25", max: "4", step: "0.05", value: "1", oninput: () => this.viewer?.setPointScale(+sizeRange.value) });
    this.pointSize = el("label", { class: "toggle", hidden: true }, "size ", sizeRange);

    this.viewport = el("div", { class: "viewport" });
    this.viewsImg = el("img", { class: "view-main", alt: "" });
    this.viewsCaption = el("div", { class: "view-caption muted" });
    this.viewsStrip = el("div", { class: "view-strip" });
    this.viewsPanel = el("div", { class: "views-panel", hidden: true }, this.viewsImg, this.viewsCaption, this.viewsStrip);
    this.message = el("div", { class: "message", role: "status", hidden: true });
    this.timeline = this.buildTimeline();

    this.node = el("div", { class: "result" },
      el("header", { class: "bar" },
        single ? null : el("a", { href: "#/", class: "back", title: "all results" }, "← all results"),
        el("h1", { class: "prompt", title: r.title }, r.title),
        el("span", { class: "spacer" }),
        el("div", { class: "controls" },
          el("div", { class: "modes", role: "group", "aria-label": "show" }, Object.values(this.modeButtons)),
          this.pointSize, this.camerasToggle, this.resetButton, this.bgButton, this.shotButton)),
      el("div", { class: "body" },
        el("div", { class: "stage" }, this.viewport, this.viewsPanel, this.message, this.timeline),
        infoPanel(r)));
    app.replaceChildren(this.node);
  }

  buildTimeline() {
    this.playButton = el("button", { class: "play", onclick: () => (this.playing ? this.pause() : this.play()) }, "▶ Play");
    this.scrub = el("input", { type: "range", class: "scrub", min: "0", max: "0", step: "1", value: "0", "aria-label": "frame",
      oninput: () => { this.pause(); this.showFrame(+this.scrub.value); } });
    this.frameLabel = el("span", { class: "frame-label" });
    return el("div", { class: "timeline", hidden: true }, this.playButton, this.scrub, this.frameLabel);
  }

  // Frames of the time sequence that hold the current kind.
  framesFor(kind) {
    return (this.r.frames?.frames || []).filter((f) => f.assets?.[kind]);
  }

  setMode(mode) {
    this.pause();
    this.mode = mode;
    this.state.mode = mode;
    for (const [m, b] of Object.entries(this.modeButtons)) b.setAttribute("aria-pressed", String(m === mode));
    this.updateHash();
    const views = mode === "views";
    this.viewport.hidden = views;
    this.viewsPanel.hidden = !views;
    this.resetButton.hidden = views;
    this.camerasToggle.hidden = views || !this.viewer?.cameraGroup.children.length;
    this.pointSize.hidden = mode !== "points";
    if (views) return this.showViews(0);
    const frames = this.framesFor(mode);
    this.timeline.hidden = frames.length === 0;
    if (frames.length) {
      this.scrub.max = String(frames.length - 1);
      return this.showFrame(Math.min(Math.max(this.frame, 0), frames.length - 1));
    }
    this.state.frame = null;
    return this.showAsset(this.r.assets[mode]);
  }

  // Load and show one asset; a failure becomes a message on the page, never a blank canvas.
  async showAsset(asset, onShown) {
    const token = ++this.token;
    this.setBusy();
    this.hideMessage();
    if (!this.viewer) return this.setReady();
    const slow = setTimeout(() => token === this.token && this.showMessage(`Loading ${asset.file} …`, "loading"), 400);
    try {
      const obj = await this.viewer.load(asset);
      clearTimeout(slow);
      if (token !== this.token) return false;
      this.viewer.display(obj);
      this.state.shown = asset.url;
      onShown?.();
      this.hideMessage();
      await this.viewer.settle();
    } catch (e) {
      if (token !== this.token) return false;
      this.viewer.display(null);
      this.state.shown = null;
      console.warn(e);
      this.showMessage(`Could not show ${asset.file}: ${e.message}`, "error");
    } finally {
      clearTimeout(slow);
    }
    if (token === this.token) this.setReady();
    return true;
  }

  async showFrame(i) {
    const frames = this.framesFor(this.mode);
    if (!frames.length) return false;
    i = ((i % frames.length) + frames.length) % frames.length;
    const f = frames[i];
    this.frame = i;
    this.scrub.value = String(i);
    this.frameLabel.textContent = `${i + 1} / ${frames.length} · ${f.label}`;
    const next = frames[(i + 1) % frames.length].assets[this.mode];
    return this.showAsset(f.assets[this.mode], () => {
      if (this.state.frame !== i) this.state.frameChanges++;
      this.state.frame = i;
      this.updateHash();
      this.viewer.load(next).catch(() => {}); // prefetch: playback need not wait for the network
    });
  }

  async play() {
    const frames = this.framesFor(this.mode);
    if (frames.length < 2 || this.playing) return;
    this.playing = true;
    this.playButton.textContent = "❚❚ Pause";
    const dt = 1000 / (this.r.frames.fps || 12);
    while (this.playing) {
      const t0 = performance.now();
      const shown = await this.showFrame(this.frame + 1); // waits for the frame: no skipped frames
      if (!this.playing || shown === false) break;
      await sleep(Math.max(dt - (performance.now() - t0), 0));
    }
  }

  pause() {
    this.playing = false;
    this.playButton.textContent = "▶ Play";
  }

  async showViews(i) {
    const v = this.r.views;
    const images = v.images.length ? v.images : [{ url: v.sheet, name: "views.png" }];
    i = ((i % images.length) + images.length) % images.length;
    this.viewIndex = i;
    const token = ++this.token;
    this.setBusy();
    this.hideMessage();
    this.timeline.hidden = true;
    this.state.frame = null;
    if (!this.viewsStrip.children.length && images.length > 1) {
      this.viewsStrip.append(...images.map((im, j) => el("img", {
        src: assetUrl(im.url), alt: im.name, title: im.name, loading: "lazy", onclick: () => this.showViews(j),
      })));
    }
    [...this.viewsStrip.children].forEach((c, j) => c.classList.toggle("current", j === i));
    this.viewsCaption.textContent = images.length > 1 ? `view ${i + 1} / ${images.length} · ${images[i].name}` : images[i].name;
    this.viewsImg.src = assetUrl(images[i].url) || "";
    try {
      await this.viewsImg.decode();
      this.state.shown = images[i].url;
    } catch {
      if (token === this.token) this.showMessage(`Could not show ${images[i].name}: the image is missing or corrupt`, "error");
    }
    if (token === this.token) this.setReady();
  }

  key(e) {
    // Inputs handle their own keys (a focused scrubber steps with the arrows); a focused button
    // already acts on space/enter.
    if (e.target instanceof HTMLInputElement) return;
    if (e.target instanceof HTMLButtonElement && (e.key === " " || e.key === "Enter")) return;
    if (this.mode === "views") {
      if (e.key === "ArrowRight") this.showViews(this.viewIndex + 1);
      else if (e.key === "ArrowLeft") this.showViews(this.viewIndex - 1);
      return;
    }
    if (e.key === "f" || e.key === "F") this.viewer?.frameObject();
    if (this.timeline.hidden) return;
    if (e.key === " ") {
      e.preventDefault();
      this.playing ? this.pause() : this.play();
    } else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      e.preventDefault();
      this.pause();
      this.showFrame(this.frame + (e.key === "ArrowRight" ? 1 : -1));
    }
  }

  cycleBackground() {
    const names = Object.keys(BACKGROUNDS);
    this.setBackground(names[(names.indexOf(this.bg) + 1) % names.length]);
    localStorage.setItem("gen3d.bg", this.bg);
    this.updateHash();
  }

  setBackground(name) {
    this.bg = name;
    this.state.background = name;
    this.bgButton.replaceChildren(el("span", { class: "swatch", style: `background:${BACKGROUNDS[name]}` }), name);
    this.bgButton.title = `background: ${name} (click for the next)`;
    this.node.style.setProperty("--stage-bg", BACKGROUNDS[name]);
    this.viewer?.setBackground(BACKGROUNDS[name]);
  }

  async saveScreenshot() {
    const name = `${this.r.name || "result"}_${this.mode}${this.state.frame !== null ? `_${String(this.state.frame).padStart(4, "0")}` : ""}`;
    let url;
    if (this.mode === "views") {
      url = this.viewsImg.src;
    } else {
      if (!this.viewer) return;
      url = URL.createObjectURL(await this.viewer.screenshot());
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    }
    const a = el("a", { href: url, download: `${name}.png`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
  }

  updateHash() {
    const frame = this.state.frame ?? undefined;
    history.replaceState(null, "", resultHash(this.r.id, { mode: this.mode, frame: frame || undefined, bg: this.bg === "dark" ? undefined : this.bg }));
  }

  showMessage(text, level = "info") {
    this.message.textContent = text;
    this.message.className = `message ${level}`;
    this.message.hidden = false;
    if (level === "error") this.state.message = text;
  }

  hideMessage() {
    this.message.hidden = true;
    this.state.message = null;
  }

  setBusy() {
    this.state.ready = false;
    window.__ready = false;
  }

  setReady() {
    this.state.ready = true;
    window.__ready = true;
  }

  dispose() {
    this.pause();
    this.token++;
    window.removeEventListener("keydown", this.onKey);
    this.viewer?.dispose();
  }
}
