/**
 * Bundles a server service's entry (or the telemetry preload) into one ES module under dist/bundle/, which is what
 * its start script, the image and the tests run:  node ../../scripts/bundle.mjs src/index.ts   (from the package).
 *
 * Why: run from tsc's output, a service loads ~1,900 files (its workspace packages, the OpenTelemetry SDK, zod,
 * yaml, semver, …) at every start: ~1.3 CPU-seconds and ~115 MB of RSS before it does anything. One file, from which
 * esbuild dropped what is never imported, starts in about half the CPU and ~20 MB less memory
 * (docs/PERFORMANCE.md, "session 23: bundled services").
 *
 * What stays outside the bundle, loaded from node_modules at run time (so each is a dependency of every service
 * that bundles it):
 * - the packages the telemetry preload's instrumentations patch when they are required: @grpc/grpc-js, ioredis and
 *   pino. A copy inside the bundle would never pass through require(), so it would never be patched (no grpc or
 *   ioredis spans, no trace ids in logs);
 * - @tm/console, whose files the gateway finds next to its module (import.meta.url);
 * - piscina (the worker's handler threads), which starts its threads from its own worker.js, found beside its module;
 * Node's built-ins are never bundled.
 */
import { mkdirSync } from "node:fs";
import { basename, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/** Loaded from node_modules at run time (see above); test/deployment.int.test.ts checks that every service whose
 *  bundle names one has it as a production dependency, so that the image has it. */
export const EXTERNAL = ["@grpc/grpc-js", "ioredis", "pino", "@tm/console", "piscina"];

/**
 * Bundles `entry` (relative to the current directory, a package's) into dist/bundle/<entry's name>.js. `external`:
 * what stays outside (EXTERNAL for a service; a command-line tool, which loads no telemetry, can take everything in).
 */
export async function bundle(entry, external = EXTERNAL) {
  const outdir = join("dist", "bundle");
  mkdirSync(outdir, { recursive: true });
  await build(options(entry, join(outdir, `${basename(entry, extname(entry))}.js`), external));
}

function options(entry, outfile, external) {
  return {
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // Workspace packages from their TypeScript sources (as the tests run them): no dependency on tsc's output, and the
    // source map points at .ts files.
    conditions: ["source"],
    external,
    // CommonJS packages in the bundle (fastify, pino's helpers, …) call require() for built-ins and for the external
    // packages above; an ES module has no require, so the bundle makes one. Going through require() is also what lets
    // the instrumentations patch those packages.
    banner: {
      js: "import { createRequire as __tmCreateRequire } from 'node:module'; const require = __tmCreateRequire(import.meta.url);",
    },
    // No keepNames: esbuild would wrap every function and class it defines, closures made per message included, in a
    // call that redefines its `name` (3,600 in the worker's bundle): ~2 MB more peak RSS in the notifier draining its
    // stream (PERFORMANCE.md). Names are not minified, so only the few that collide across modules get a suffix
    // (PrometheusExporter2); no error class does, and nothing here compares a bundled class's name.
    // Whitespace and syntax only, identifiers kept: a third less source for V8 to keep and scan at start (the
    // gateway's bundle 4.1 → 3.0 MB), while stack traces and profiles still read.
    minifyWhitespace: true,
    minifySyntax: true,
    // Stack traces name the .ts file and line (NODE_OPTIONS=--enable-source-maps in the image). Without the sources'
    // text: a smaller map, and the image has no sources to show anyway.
    sourcemap: "linked",
    sourcesContent: false,
    // Licence notices of the bundled packages, beside the bundle (index.js.LEGAL.txt).
    legalComments: "external",
    logLevel: "warning",
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [entry, flag] = process.argv.slice(2);
  if (!entry || (flag !== undefined && flag !== "--self-contained")) {
    console.error(
      "usage: node scripts/bundle.mjs <entry, e.g. src/index.ts> [--self-contained]  (run from the package's directory;\n" +
        "--self-contained: nothing left outside the bundle, for a command-line tool)",
    );
    process.exit(64);
  }
  await bundle(entry, flag === "--self-contained" ? [] : EXTERNAL);
}
