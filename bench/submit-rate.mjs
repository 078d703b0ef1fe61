// `node bench/submit-rate.mjs [--tasks N] [--batch N] [--in-flight N] [--rounds N]` (after `pnpm build`): how fast
// one gateway accepts tasks one SubmitTask call each (--in-flight calls at a time) against SubmitTasks batches of
// --batch, and what each costs the gateway, redis-server and nats-server in CPU per 1,000 tasks. Only the gateway
// runs (its own nats-server and redis-server on free ports): the tasks are accepted and queued, not run, so this
// is the submission path alone. Rounds alternate the two ways. Figures: docs/PERFORMANCE.md, "SubmitTasks".
import { cpus } from "node:os";
import { createTaskClient } from "@tm/proto";
import { spawnService, startNats, startRedis } from "@tm/testkit";
import { cpuSecondsOf } from "./dist/proc.js";
import { positiveOption } from "./dist/script-options.js";

const TASKS = positiveOption("--tasks", 5_000);
const BATCH = positiveOption("--batch", 100);
const IN_FLIGHT = positiveOption("--in-flight", 32);
const ROUNDS = positiveOption("--rounds", 2);
/** CPU milliseconds a process has used so far (bench/src/proc.ts, as the benchmark reads it). */
const cpuMs = (pid) => cpuSecondsOf(pid) * 1000;

const [nats, redis] = await Promise.all([startNats(), startRedis()]);
// Generous limits: the gateway is measured, not its rate limiter (no authentication here, so none applies).
const gateway = await spawnService("gateway", { NATS_URL: nats.url, REDIS_URL: redis.url, LOG_LEVEL: "warn" });
const client = createTaskClient({ baseUrl: `http://127.0.0.1:${gateway.port}` });
const task = (i) => ({ type: "echo", payload: { i, note: "submit-rate" } });

/** Runs `submitAll` and returns tasks/s and each process's CPU per 1,000 tasks. */
async function measure(name, submitAll) {
  const pids = { gateway: gateway.process.pid, "redis-server": redis.process.pid, "nats-server": nats.process.pid };
  const before = Object.fromEntries(Object.entries(pids).map(([role, pid]) => [role, cpuMs(pid)]));
  const startedAt = performance.now();
  const accepted = await submitAll();
  const seconds = (performance.now() - startedAt) / 1000;
  if (accepted !== TASKS) throw new Error(`${name}: ${accepted} of ${TASKS} tasks accepted`);
  const perThousand = Object.fromEntries(
    Object.entries(pids).map(([role, pid]) => [role, ((cpuMs(pid) - before[role]) / TASKS) * 1000]),
  );
  return { name, tasksPerSec: TASKS / seconds, perThousand };
}

const oneEach = () =>
  measure(`SubmitTask, ${IN_FLIGHT} in flight`, async () => {
    let next = 0;
    let accepted = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < TASKS) {
          await client.submitTask(task(next++));
          accepted++;
        }
      }),
    );
    return accepted;
  });
const batched = () =>
  measure(`SubmitTasks, ${BATCH} per call`, async () => {
    let accepted = 0;
    for (let start = 0; start < TASKS; start += BATCH) {
      const tasks = Array.from({ length: Math.min(BATCH, TASKS - start) }, (_, i) => task(start + i));
      const { outcomes } = await client.submitTasks({ tasks });
      accepted += outcomes.filter((o) => o.outcome.case === "accepted").length;
    }
    return accepted;
  });

try {
  await oneEach(); // warm-up: the gateway's code compiled, connections open
  console.log(`submission only, ${TASKS} echo tasks per run, one gateway (${process.version}, ${cpus().length} CPUs)`);
  console.log(
    `${"way".padEnd(32)}${"tasks/s".padStart(9)}${"CPU ms / 1,000 tasks: gateway, redis-server, nats-server".padStart(60)}`,
  );
  for (let round = 0; round < ROUNDS; round++) {
    for (const run of [oneEach, batched]) {
      const { name, tasksPerSec, perThousand } = await run();
      const cpu = Object.values(perThousand)
        .map((ms) => ms.toFixed(0))
        .join(", ");
      console.log(`${name.padEnd(32)}${tasksPerSec.toFixed(0).padStart(9)}${cpu.padStart(60)}`);
    }
  }
} finally {
  await gateway.process.stop();
  await Promise.all([nats.dispose(), redis.dispose()]);
}
