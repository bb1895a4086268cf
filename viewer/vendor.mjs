// Copy the distribution files the viewer imports from node_modules into static/vendor/,
// with each library's LICENSE, and record the versions in static/vendor/VERSIONS.json.
// Run from viewer/: `npm ci && npm run vendor` (after changing a version in package.json: `npm install`).
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const FILES = {
  three: [
    "LICENSE",
    "build/three.module.js",
    "build/three.core.js",
    "examples/jsm/controls/OrbitControls.js",
    "examples/jsm/loaders/GLTFLoader.js",
    "examples/jsm/loaders/PLYLoader.js",
    "examples/jsm/utils/BufferGeometryUtils.js",
    "examples/jsm/utils/SkeletonUtils.js",
    "examples/jsm/postprocessing/Pass.js", // imported by spark
  ],
  "@sparkjsdev/spark": ["LICENSE", "dist/spark.module.min.js"],
};
const TARGET = { three: "three", "@sparkjsdev/spark": "spark" };

rmSync("static/vendor", { recursive: true, force: true });
const versions = {};
for (const [pkg, files] of Object.entries(FILES)) {
  const src = join("node_modules", pkg);
  const meta = JSON.parse(readFileSync(join(src, "package.json"), "utf8"));
  versions[pkg] = { version: meta.version, license: meta.license, files };
  for (const f of files) {
    // Flatter paths: three's build/ -> three/, examples/jsm/ -> three/addons/ (as the import map
    // names them), spark's dist/ -> spark/. Relative imports inside the files still resolve.
    const rel = f.replace(/^(dist|build)\//, "").replace(/^examples\/jsm\//, "addons/");
    const dst = join("static/vendor", TARGET[pkg], rel);
    mkdirSync(dirname(dst), { recursive: true });
    copyFileSync(join(src, f), dst);
  }
}
writeFileSync("static/vendor/VERSIONS.json", JSON.stringify(versions, null, 2) + "\n");
console.log(Object.entries(versions).map(([k, v]) => `${k} ${v.version}`).join(", "));
