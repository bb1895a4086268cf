// The 3D view: one three.js scene that shows splats (Spark), meshes (.glb) and point clouds (.ply)
// with orbit / zoom / pan controls. Rendering is on demand (camera moves, Spark's sort finishing),
// so an idle page costs nothing.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { PLYLoader } from "three/addons/loaders/PLYLoader.js";
import { fetchBytes, sleep } from "./util.js";

const MAX_CACHED = 48; // loaded objects kept for quick switching (modes, timeline frames)
let sparkModule = null; // Spark (2.7 MB) is imported only when a result has splats.
const loadSpark = () => (sparkModule ??= import("@sparkjsdev/spark"));

export class Viewer3D {
  constructor(container) {
    this.container = container;
    // Throws if WebGL2 is unavailable; the result page turns that into a message.
    this.renderer = new THREE.WebGLRenderer({ antialias: false, alpha: false });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.canvas = this.renderer.domElement;
    container.append(this.canvas);

    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(40, 1, 0.01, 100);
    this.camera.position.set(1.2, 0.9, 2.4);
    this.scene.add(this.camera);
    // Soft sky/ground light plus a headlight that follows the camera: every side seen is lit.
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x666666, 1.6));
    const head = new THREE.DirectionalLight(0xffffff, 1.4);
    head.position.set(0.3, 0.6, 1);
    this.camera.add(head);

    this.root = new THREE.Group(); // the object on show; loaded objects are cached off-scene
    this.scene.add(this.root);
    this.cameraGroup = new THREE.Group();
    this.cameraGroup.visible = false;
    this.scene.add(this.cameraGroup);

    this.controls = new OrbitControls(this.camera, this.canvas);
    this.controls.addEventListener("change", () => this.requestRender());

    this.cache = new Map(); // url -> Promise<Object3D>
    this.renders = 0;
    this.framed = false;
    this.spark = null;
    this.pointScale = 1;
    this._raf = 0;
    this._resize = new ResizeObserver(() => this.resize());
    this._resize.observe(container);
    this.resize();
  }

  resize() {
    const w = Math.max(this.container.clientWidth, 1);
    const h = Math.max(this.container.clientHeight, 1);
    this.renderer.setSize(w, h, true);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.requestRender();
  }

  requestRender() {
    if (this._raf || this.disposed) return;
    this._raf = requestAnimationFrame(() => {
      this._raf = 0;
      this.renderer.render(this.scene, this.camera);
      this.renders++;
    });
  }

  // Resolve once rendering has gone quiet (no render for a while): Spark sorts splats in a worker
  // and asks for a re-render when done, so "loaded" is not yet "drawn".
  async settle(maxMs = 8000) {
    const t0 = performance.now();
    this.requestRender();
    let last = -1;
    while (performance.now() - t0 < maxMs) {
      await sleep(120);
      if (!this._raf && this.renders > 0 && this.renders === last) return;
      last = this.renders;
    }
  }

  setBackground(color) {
    this.renderer.setClearColor(new THREE.Color(color), 1);
    this.requestRender();
  }

  async ensureSpark() {
    const { SparkRenderer } = await loadSpark();
    if (!this.spark) {
      this.spark = new SparkRenderer({ renderer: this.renderer, onDirty: () => this.requestRender() });
      this.scene.add(this.spark);
    }
  }

  // Load (once) the object for an asset {kind, format, file, url}. The cache keeps the most
  // recently used MAX_CACHED objects, so a long time sequence does not fill the GPU's memory.
  load(asset) {
    let p = this.cache.get(asset.url);
    if (p) {
      this.cache.delete(asset.url); // re-insert: Map order is the recency order
    } else {
      p = this._load(asset).catch((e) => {
        this.cache.delete(asset.url); // a retry (e.g. after fixing the file) loads again
        throw e;
      });
    }
    this.cache.set(asset.url, p);
    this._evict();
    return p;
  }

  _evict() {
    for (const [url, p] of this.cache) {
      if (this.cache.size <= MAX_CACHED) break;
      this.cache.delete(url);
      p.then((o) => o.parent !== this.root && disposeObject(o)).catch(() => {});
    }
  }

  async _load(asset) {
    const bytes = await fetchBytes(asset.url);
    try {
      if (asset.kind === "splats") return await this._splats(bytes, asset);
      if (asset.kind === "mesh") return await this._mesh(bytes);
      return this._points(bytes);
    } catch (e) {
      throw new Error(`not a valid ${describe(asset)} (${e?.message || e})`);
    }
  }

  async _splats(bytes, asset) {
    await this.ensureSpark();
    const { SplatMesh } = await loadSpark();
    if (asset.format === "ply") checkSplatPly(bytes);
    const mesh = new SplatMesh({ fileBytes: bytes, fileType: asset.format, fileName: asset.file });
    await mesh.initialized;
    if (!mesh.numSplats) throw new Error("it holds no splats");
    return mesh;
  }

  async _mesh(bytes) {
    const gltf = await new GLTFLoader().parseAsync(bytes.buffer, "");
    const obj = gltf.scene;
    // A primitive without a material gets glTF's default, metallic 1, which renders black
    // without an environment map: show its colours as a matte surface instead.
    const materials = gltf.parser.json.materials || [];
    obj.traverse((o) => {
      if (!o.isMesh) return;
      const mats = Array.isArray(o.material) ? o.material : [o.material];
      for (const m of mats) {
        if (materials.length === 0 && m.isMeshStandardMaterial) {
          m.metalness = 0;
          m.vertexColors = !!o.geometry.attributes.color;
          m.needsUpdate = true;
        }
      }
    });
    let faces = 0;
    obj.traverse((o) => o.isMesh && (faces += (o.geometry.index?.count ?? o.geometry.attributes.position.count) / 3));
    if (!faces) throw new Error("it holds no triangles");
    return obj;
  }

  _points(bytes) {
    const geometry = new PLYLoader().parse(bytes.buffer);
    const n = geometry.attributes.position?.count ?? 0;
    if (!n) throw new Error("it holds no points");
    geometry.computeBoundingBox();
    const diag = geometry.boundingBox.getSize(new THREE.Vector3()).length();
    const hasColor = !!geometry.attributes.color;
    const material = new THREE.PointsMaterial({
      size: 1, vertexColors: hasColor, color: hasColor ? 0xffffff : 0xbbbbbb, sizeAttenuation: true,
    });
    const points = new THREE.Points(geometry, material);
    // About the spacing of n points spread over the object's surface.
    points.userData.baseSize = (2 * diag) / Math.sqrt(n);
    material.size = points.userData.baseSize * this.pointScale;
    return points;
  }

  setPointScale(s) {
    this.pointScale = s;
    for (const p of this.cache.values()) {
      p.then((o) => o.isPoints && (o.material.size = o.userData.baseSize * s)).catch(() => {});
    }
    this.requestRender();
  }

  // Show one loaded object (or nothing).
  display(obj) {
    for (const c of [...this.root.children]) this.root.remove(c);
    if (obj) {
      this.root.add(obj);
      if (!this.framed) {
        this.frameObject(obj);
        this.framed = true;
      }
    }
    this.requestRender();
  }

  boundsOf(obj) {
    if (obj.getBoundingBox) return obj.getBoundingBox(true); // Spark: splat centres
    return new THREE.Box3().setFromObject(obj);
  }

  // Point the camera at an object from the front-right, a little above, so it fills the view.
  frameObject(obj = this.root.children[0]) {
    if (!obj) return;
    const box = this.boundsOf(obj);
    if (box.isEmpty()) return;
    const sphere = box.getBoundingSphere(new THREE.Sphere());
    const r = Math.max(sphere.radius, 1e-3);
    const vfov = THREE.MathUtils.degToRad(this.camera.fov);
    const hfov = 2 * Math.atan(Math.tan(vfov / 2) * this.camera.aspect);
    const dist = (r / Math.sin(Math.min(vfov, hfov) / 2)) * 1.1;
    const dir = new THREE.Vector3(0.45, 0.35, 1).normalize();
    this.camera.position.copy(sphere.center).addScaledVector(dir, dist);
    this.camera.near = dist / 100;
    this.camera.far = dist * 100;
    this.camera.updateProjectionMatrix();
    this.controls.target.copy(sphere.center);
    this.controls.update();
    this.requestRender();
  }

  // Camera frusta of the views (OpenGL camera-to-world, looking along -z).
  setCameras(images, camera) {
    this.cameraGroup.clear();
    const mats = images.filter((v) => v.c2w).map((v) => new THREE.Matrix4().set(...v.c2w.flat().slice(0, 12), 0, 0, 0, 1));
    if (!mats.length) return false;
    const aspect = camera?.w && camera?.h ? camera.w / camera.h : 1;
    const tanHalf = camera?.fl_y && camera?.h ? camera.h / (2 * camera.fl_y) : Math.tan(THREE.MathUtils.degToRad(20));
    const eyes = mats.map((m) => new THREE.Vector3().setFromMatrixPosition(m));
    const size = 0.12 * Math.max(...eyes.map((e) => e.length()), 1e-3);
    const y = size * tanHalf;
    const x = y * aspect;
    const c = [[-x, -y], [x, -y], [x, y], [-x, y]].map(([a, b]) => new THREE.Vector3(a, b, -size));
    const o = new THREE.Vector3();
    const seg = [];
    for (let i = 0; i < 4; i++) seg.push(o, c[i], c[i], c[(i + 1) % 4]);
    seg.push(new THREE.Vector3(-x * 0.5, y * 1.1, -size), new THREE.Vector3(0, y * 1.6, -size)); // "up" tick
    seg.push(new THREE.Vector3(0, y * 1.6, -size), new THREE.Vector3(x * 0.5, y * 1.1, -size));
    const geometry = new THREE.BufferGeometry().setFromPoints(seg);
    const material = new THREE.LineBasicMaterial({ color: 0xffa640 });
    for (const m of mats) {
      const lines = new THREE.LineSegments(geometry, material);
      lines.applyMatrix4(m);
      this.cameraGroup.add(lines);
    }
    this.requestRender();
    return true;
  }

  showCameras(on) {
    this.cameraGroup.visible = on;
    this.requestRender();
  }

  // A PNG of exactly what is on screen (rendered now, read in the same task: no need to keep
  // the drawing buffer around between frames).
  screenshot() {
    this.renderer.render(this.scene, this.camera);
    return new Promise((res) => this.canvas.toBlob(res, "image/png"));
  }

  dispose() {
    this.disposed = true;
    cancelAnimationFrame(this._raf);
    this._resize.disconnect();
    this.controls.dispose();
    for (const p of this.cache.values()) p.then(disposeObject).catch(() => {});
    this.renderer.dispose();
    this.renderer.forceContextLoss?.();
    this.canvas.remove();
  }
}

function disposeObject(obj) {
  if (obj.dispose) return obj.dispose(); // SplatMesh
  obj.traverse((o) => {
    o.geometry?.dispose();
    for (const m of [o.material].flat()) m?.dispose();
  });
}

function describe(asset) {
  return { splats: "Gaussian splat file", mesh: "glTF binary (.glb)", points: "point cloud (.ply)" }[asset.kind];
}

// Spark decodes any .ply; a plain point cloud given as splats would show as nothing, so say so.
function checkSplatPly(bytes) {
  const head = new TextDecoder().decode(bytes.subarray(0, Math.min(bytes.length, 16384)));
  const end = head.indexOf("end_header");
  if (!head.startsWith("ply") || end < 0) throw new Error("it is not a PLY file (no PLY header)");
  const header = head.slice(0, end);
  if (/element chunk /.test(header)) return; // compressed 3DGS .ply
  const missing = ["f_dc_0", "opacity", "scale_0", "rot_0"].filter((f) => !new RegExp(`property \\w+ ${f}\\b`).test(header));
  if (missing.length) throw new Error(`its header lacks the 3DGS fields ${missing.join(", ")} (a point cloud belongs in points.ply)`);
}
