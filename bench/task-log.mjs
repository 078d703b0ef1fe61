// `node bench/task-log.mjs [--tasks N]` (after `pnpm build`): what keeping a handler's ctx.log lines with its task
// (services/worker/src/task-log.ts, task_logs:<id>) costs the worker, against a redis-server of its own: for attempts
// that log 1, 10 and 100 lines, the worker's CPU per attempt when the lines go to its log only
// (WORKER_TASK_LOG_LINES=0) and when they are also kept with the task (the lines parsed and written in one script call
// at the attempt's end), the wall time the attempt's end waits for them, and the Redis memory of one task's log.
// --tasks attempts are run one after another per row (the first of each row's runs only warms up).
// Figures: docs/PERFORMANCE.md, "session 41".
import { Writable } from "node:stream";
import { Redis } from "ioredis";
import { createLogger } from "../pkg/kit/dist/logger.js";
import { startRedis } from "../pkg/testkit/dist/index.js";
import { AttemptLog, attemptLogger } from "../services/worker/dist/task-log.js";
import { positiveOption } from "./dist/script-options.js";

const TASKS = positiveOption("--tasks", 1_000);
const server = await startRedis();
const redis = new Redis(server.url);
// The worker's own log goes nowhere: what is measured is what ctx.log costs, not a terminal's.
const workerLog = createLogger("worker", "info", new Writable({ write: (_chunk, _encoding, done) => done() }));
const settings = { redis, maxLines: 1_000, ttlSeconds: 600, log: workerLog };

/** Runs TASKS attempts logging `lines` lines each (kept with the task or not): CPU µs and wall ms per attempt. */
async function attempts(lines, kept, prefix) {
  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  for (let task = 0; task < TASKS; task++) {
    const taskId = `${prefix}-${task}`;
    const attemptLog = kept ? new AttemptLog(settings, { taskId, attempt: 1, generation: 0 }) : undefined;
    const log = attemptLogger(workerLog, { taskId, type: "bench", attempt: 1 }, attemptLog);
    for (let n = 1; n <= lines; n++) log.info({ part: n, of: lines }, "uploading a part of the export");
    await attemptLog?.close();
  }
  const cpu = process.cpuUsage(cpuBefore);
  return { cpuUs: (cpu.user + cpu.system) / TASKS, wallMs: (performance.now() - startedAt) / TASKS };
}

const rows = [];
for (const lines of [1, 10, 100]) {
  await attempts(lines, true, `warm-${lines}`);
  await attempts(lines, false, `warm-${lines}`);
  const only = await attempts(lines, false, `only-${lines}`);
  const kept = await attempts(lines, true, `kept-${lines}`);
  const bytes = await redis.memory("USAGE", `task_logs:kept-${lines}-0`, "SAMPLES", "0");
  rows.push([
    `${lines} line${lines === 1 ? "" : "s"} an attempt`,
    `${only.cpuUs.toFixed(0)} µs`,
    `${kept.cpuUs.toFixed(0)} µs`,
    `${(kept.wallMs - only.wallMs).toFixed(2)} ms`,
    `${bytes} B`,
  ]);
}
redis.disconnect();
await server.dispose();

const header = ["attempts", "CPU, worker log only", "CPU, kept with the task", "wall added", "Redis per task log"];
const width = header.map((name, i) => Math.max(name.length, ...rows.map((row) => row[i].length)));
console.log(`task logs (Node ${process.version}, ${TASKS} attempts a row, per attempt):`);
for (const row of [header, ...rows]) console.log(row.map((cell, i) => cell.padEnd(width[i])).join("  "));
