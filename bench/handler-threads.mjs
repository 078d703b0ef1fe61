// `node bench/handler-threads.mjs [--attempts N] [--spins N] [--spin-ms N]` (after `pnpm build`): what running a
// handler in a worker thread (`isolation: "thread"`, services/worker/src/handler-threads.ts) costs and buys, without
// NATS or Redis: the pool is driven as the worker drives it, with a ctx of plain functions.
//   - a cold attempt: a new pool's first (the thread starts and imports the module);
//   - a warm attempt: a no-op handler, and one that reports progress and calls ctx.dependencies(), one at a time;
//   - CPU-bound attempts (--spins of --spin-ms each, all at once): on the event loop, then in two threads: the wall
//     time and the longest the event loop was held (what stops a worker's heartbeats);
//   - the RSS an idle thread adds.
// Run with the services' flags for the figures as deployed: node --expose-gc --max-semi-space-size=2
// --heap-growing-percent=20 bench/handler-threads.mjs (V8's flags hold for every thread of the process).
// Figures: docs/PERFORMANCE.md, "handler threads".
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../pkg/kit/dist/logger.js";
import { HandlerThreads } from "../services/worker/dist/handler-threads.js";
import { positiveOption } from "./dist/script-options.js";

const ATTEMPTS = positiveOption("--attempts", 2_000);
const SPINS = positiveOption("--spins", 8);
const SPIN_MS = positiveOption("--spin-ms", 100);
const COLD_POOLS = 5;

const dir = mkdtempSync(join(tmpdir(), "tm-bench-threads-"));
const specifier = join(dir, "handlers.mjs");
const source = `
  const busy = (ms) => { const end = Date.now() + ms; while (Date.now() < end) {} };
  export const handlers = [
    { type: "noop", isolation: "thread", run: (payload) => payload },
    { type: "chatty", isolation: "thread", async run(payload, ctx) {
        ctx.reportProgress(50, "half way");
        return { payload, dependencies: await ctx.dependencies() };
      } },
    { type: "spin", isolation: "thread", run: ({ ms }) => { busy(ms); return { ms }; } },
  ];`;
writeFileSync(specifier, source);
const { handlers: direct } = await import(specifier);

const log = createLogger("worker", "warn");
const handler = (type) => ({
  type,
  payload: { "~standard": { version: 1, vendor: "bench", validate: (value) => ({ value }) } },
  run: () => undefined,
  isolation: "thread",
  module: { specifier, cwd: dir },
});
const ctx = {
  taskId: "bench",
  attempt: 1,
  deferrals: 0,
  signal: new AbortController().signal,
  reportProgress: () => undefined,
  log,
  dependencies: async () => [{ taskId: "dep", state: "SUCCEEDED", result: { n: 1 } }],
  submitTask: async () => ({ taskId: "child", deduplicated: false }),
  submitTasks: async () => [],
};
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const rows = [];
const row = (name, figure, note = "") => rows.push([name, figure, note]);

// Cold: each pool's first attempt starts a thread and imports the module there.
const cold = [];
for (let i = 0; i < COLD_POOLS; i++) {
  const pool = new HandlerThreads({ maxThreads: 1, log, service: "worker" });
  const startedAt = performance.now();
  await pool.isolated(handler("noop")).run({ i }, ctx);
  cold.push(performance.now() - startedAt);
  await pool.close();
}
cold.sort((a, b) => a - b);
row("cold attempt (thread start + import)", `${percentile(cold, 50).toFixed(1)} ms p50`, `of ${COLD_POOLS} new pools`);

const threads = new HandlerThreads({ maxThreads: 2, log, service: "worker" });
// Two attempts at once start both threads; the RSS they add, idle, after a full collection where --expose-gc allows.
const settledRss = async () => {
  globalThis.gc?.();
  await new Promise((resolve) => setTimeout(resolve, 200));
  return process.memoryUsage().rss;
};
const rssBefore = await settledRss();
await Promise.all([1, 2].map((i) => threads.isolated(handler("noop")).run({ i }, ctx)));
const addedMb = ((await settledRss()) - rssBefore) / 1024 / 1024;
row(
  "RSS of 2 idle threads",
  `${addedMb.toFixed(1)} MB`,
  `${threads.threads} threads alive, the module imported in each`,
);
for (const type of ["noop", "chatty"]) {
  const run = threads.isolated(handler(type)).run;
  await run({ warm: true }, ctx);
  const times = [];
  for (let i = 0; i < ATTEMPTS; i++) {
    const startedAt = performance.now();
    await run({ i }, ctx);
    times.push(performance.now() - startedAt);
  }
  times.sort((a, b) => a - b);
  const onLoop = performance.now();
  for (let i = 0; i < ATTEMPTS; i++) await direct.find((h) => h.type === type).run({ i }, ctx);
  const onLoopUs = ((performance.now() - onLoop) / ATTEMPTS) * 1000;
  row(
    `warm attempt, ${type === "noop" ? "no-op" : "progress + dependencies()"}`,
    `${(percentile(times, 50) * 1000).toFixed(0)} µs p50, ${(percentile(times, 99) * 1000).toFixed(0)} µs p99`,
    `${ATTEMPTS} one at a time; on the event loop ${onLoopUs.toFixed(1)} µs`,
  );
}

/** Wall time of `run` and the longest gap between ticks of a 1 ms interval meanwhile: how long the event loop was
 *  held (a worker's heartbeats wait that long). */
async function heldLoop(run) {
  let last = performance.now();
  let maxGapMs = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
  }, 1);
  await new Promise((resolve) => setTimeout(resolve, 20));
  const startedAt = performance.now();
  await run();
  const wallMs = performance.now() - startedAt;
  // One more tick, so a stall at the very end is counted too.
  await new Promise((resolve) => setTimeout(resolve, 20));
  clearInterval(ticker);
  return { wallMs, maxHeldMs: maxGapMs };
}
const spinDirect = direct.find((h) => h.type === "spin");
const inline = await heldLoop(() =>
  Promise.all(Array.from({ length: SPINS }, () => Promise.resolve().then(() => spinDirect.run({ ms: SPIN_MS })))),
);
row(
  `${SPINS} × ${SPIN_MS} ms CPU on the event loop`,
  `${inline.wallMs.toFixed(0)} ms wall`,
  `event loop held up to ${inline.maxHeldMs.toFixed(0)} ms`,
);
const spin = threads.isolated(handler("spin")).run;
const threaded = await heldLoop(() => Promise.all(Array.from({ length: SPINS }, () => spin({ ms: SPIN_MS }, ctx))));
row(
  `${SPINS} × ${SPIN_MS} ms CPU in 2 threads`,
  `${threaded.wallMs.toFixed(0)} ms wall`,
  `event loop held up to ${threaded.maxHeldMs.toFixed(0)} ms`,
);
await threads.close();
rmSync(dir, { recursive: true, force: true });

const width = [0, 1].map((i) => Math.max(...rows.map((r) => r[i].length)));
console.log(`handler threads (Node ${process.version}):`);
for (const [name, figure, note] of rows) console.log(`${name.padEnd(width[0])}  ${figure.padEnd(width[1])}  ${note}`);
