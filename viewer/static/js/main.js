// Entry point: routes "#/" to the gallery and "#/r/<id>?mode=..." to a result page.
import { Gallery } from "./gallery.js";
import { ResultPage } from "./result.js";
import { el, loadIndex, parseHash, resultHash } from "./util.js";

const app = document.getElementById("app");
// State for tests and scripts: what is shown, errors seen; window.__ready once it is drawn.
const state = (window.__viewer = { ready: false, errors: [], page: null });
window.__ready = false;
window.addEventListener("error", (e) => state.errors.push(String(e.message || e)));
window.addEventListener("unhandledrejection", (e) => state.errors.push(String(e.reason?.message || e.reason)));

let page = null;

async function route() {
  window.__ready = false;
  state.ready = false;
  page?.dispose();
  page = null;
  let index;
  try {
    index = await loadIndex();
  } catch (e) {
    app.replaceChildren(el("p", { class: "message error page-error" }, `Could not load the results: ${e.message}`));
    state.page = "error";
    window.__ready = true;
    return;
  }
  const { parts, params } = parseHash(location.hash);
  const single = index.results.length === 1;
  if (parts[0] === "r" && parts.length >= 2) {
    const id = parts.slice(1).join("/");
    const r = index.results.find((x) => x.id === id);
    if (!r) {
      app.replaceChildren(el("div", { class: "gallery" }, el("p", { class: "message error page-error" },
        `No result "${id}" here. `, el("a", { href: "#/" }, "See all results"))));
      state.page = "missing";
      window.__ready = true;
      return;
    }
    document.title = `${r.title} · gen3d`;
    state.page = "result";
    page = new ResultPage(app, r, params, state, { single });
    return;
  }
  if (single && parts.length === 0) {
    location.replace(resultHash(index.results[0].id)); // one result: open it (hashchange routes again)
    return;
  }
  document.title = "gen3d results";
  state.page = "gallery";
  page = new Gallery(app, index);
  state.ready = true;
  window.__ready = true;
}

window.addEventListener("hashchange", route);
route();
