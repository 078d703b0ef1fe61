/**
 * Builds the console into dist/: one bundled, minified script and one stylesheet under assets/ with content hashes
 * in their names (so the gateway can let browsers cache them for a year), and index.html pointing at them (served
 * with no-cache, so a new build is picked up at once).
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
rmSync(dist, { recursive: true, force: true });

const result = await build({
  entryPoints: [join(here, "src/main.ts"), join(here, "src/styles.css")],
  outdir: join(dist, "assets"),
  entryNames: "[name]-[hash]",
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  // Workspace packages are bundled from their TypeScript sources: no build of @tm/proto is needed first.
  conditions: ["source"],
  metafile: true,
  logLevel: "warning",
});

const outputs = Object.entries(result.metafile.outputs);
const outputOf = (entry) => {
  const found = outputs.find(([, meta]) => meta.entryPoint?.endsWith(entry));
  if (!found) throw new Error(`esbuild produced no output for ${entry}`);
  return `/assets/${basename(found[0])}`;
};
const html = readFileSync(join(here, "src/index.html"), "utf8")
  .replace("%SCRIPT%", outputOf("src/main.ts"))
  .replace("%STYLES%", outputOf("src/styles.css"));
writeFileSync(join(dist, "index.html"), html);
