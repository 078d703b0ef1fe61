import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Frame, unbundleFrames } from "../bench/src/bundle-frames.js";
import { packageOf } from "../bench/src/profile.js";

// A service bundled as scripts/bundle.mjs bundles one (linked source map beside it, whitespace minified): its own
// module and a package from node_modules, each with a function whose position in the bundle the test looks up.
let root: string;
let bundleUrl: string;
let bundleText: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "tm-bundle-frames-"));
  const pkg = join(root, "node_modules", ".pnpm", "lib@1.0.0", "node_modules", "lib");
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "lib", type: "module", main: "index.js" }));
  writeFileSync(join(pkg, "index.js"), "export function libWork(n) {\n  return n * 2;\n}\n");
  const service = join(root, "services", "demo");
  mkdirSync(join(service, "src"), { recursive: true });
  writeFileSync(
    join(service, "src", "index.ts"),
    'import { libWork } from "lib";\n\nexport function serviceWork(n: number): number {\n  return libWork(n) + 1;\n}\nconsole.log(serviceWork(1));\n',
  );
  const outfile = join(service, "dist", "bundle", "index.js");
  await build({
    entryPoints: [join(service, "src", "index.ts")],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    alias: { lib: pkg },
    keepNames: true,
    minifyWhitespace: true,
    sourcemap: "linked",
    sourcesContent: false,
    logLevel: "silent",
  });
  bundleUrl = pathToFileURL(outfile).href;
  bundleText = readFileSync(outfile, "utf8");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The frame V8 would report for the function named `name` in the bundle (0-based line and column). */
function frameOf(name: string): Frame {
  const lines = bundleText.split("\n");
  const line = lines.findIndex((text) => text.includes(`function ${name}(`));
  return { url: bundleUrl, lineNumber: line, columnNumber: lines[line]?.indexOf(`function ${name}(`) ?? -1 };
}

describe("bench profiles of bundled services: frames put back where their code came from", () => {
  it("a bundled package's function is charged to that package, the service's own to its source", () => {
    const lib = frameOf("libWork");
    const own = frameOf("serviceWork");
    expect(packageOf(lib.url)).toBe(packageOf(own.url)); // one bundle: without the map, one "package"
    unbundleFrames([lib, own]);
    expect(lib.url).toMatch(/node_modules\/\.pnpm\/lib@1\.0\.0\/node_modules\/lib\/index\.js$/);
    expect(packageOf(lib.url)).toBe("lib");
    expect(lib.lineNumber).toBe(0);
    expect(own.url).toMatch(/\/services\/demo\/src\/index\.ts$/);
    expect(packageOf(own.url)).toBe("services/demo");
    expect(own.lineNumber).toBe(2);
  });

  it("leaves frames outside a bundle, without a column, or of a bundle without its map as they are", () => {
    const outside = {
      url: "file:///repo/node_modules/.pnpm/ioredis@5.9.2/node_modules/ioredis/built/x.js",
      lineNumber: 3,
    };
    const noColumn = { url: bundleUrl, lineNumber: 0 };
    const noMap = { url: "file:///nowhere/services/x/dist/bundle/index.js", lineNumber: 0, columnNumber: 0 };
    const before = structuredClone([outside, noColumn, noMap]);
    unbundleFrames([outside, noColumn, noMap]);
    expect([outside, noColumn, noMap]).toEqual(before);
  });
});
