/**
 * Compiles a package's TypeScript sources file by file into dist/ (src/a/b.ts → dist/a/b.js, with a source map), as
 * `tsc` would emit them, with esbuild:  node ../../scripts/transpile.mjs   (from the package's directory).
 *
 * Why not tsc: every source is type-checked once, by `pnpm typecheck` (tsconfig.check.json), and the builds already
 * emitted without checking (noCheck). What tsc still did per package was build a program over the package and the
 * declarations it imports (@types/node, the OpenTelemetry SDK, …) to emit .d.ts files that nothing reads: the
 * workspace resolves its packages to their sources (the "source" condition), the services run their bundles
 * (scripts/bundle.mjs), and the packages are not published. 5 s and 7.6 CPU-s for the gateway alone; esbuild does the
 * same JavaScript in well under a second (docs/PERFORMANCE.md, session 43). `isolatedModules` and
 * `verbatimModuleSyntax` (tsconfig.base.json) are what make a file-by-file compile emit what tsc emits.
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/** Every .ts file under `dir` but declaration files. */
function sourcesIn(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts"))
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name));
}

/** Compiles `srcDir`'s sources into `outDir`, which is emptied first (a source deleted leaves no stale output),
 *  keeping dist/bundle/ (scripts/bundle.mjs's) when `outDir` is dist. */
export async function transpile(srcDir = "src", outDir = "dist") {
  const stale = existsSync(outDir) ? readdirSync(outDir, { withFileTypes: true }) : [];
  for (const entry of stale.filter((e) => e.name !== "bundle")) rmSync(join(outDir, entry.name), { recursive: true });
  const entryPoints = sourcesIn(srcDir);
  await build({
    entryPoints,
    outdir: outDir,
    outbase: srcDir,
    bundle: false,
    platform: "node",
    format: "esm",
    target: "node20",
    sourcemap: "linked",
    logLevel: "warning",
  });
  return entryPoints.map((file) => relative(srcDir, file));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.length > 2) {
    console.error("usage: node scripts/transpile.mjs   (from a package's directory: src/**/*.ts → dist/**/*.js)");
    process.exit(64);
  }
  await transpile();
}
