/**
 * services/combined as deployed (its built dist, started by its package.json start script): scheduler,
 * result-store, notifier, audit and deadletter in one process beside gateway, ingest, enricher and worker processes.
 * A task goes through to SUCCEEDED with its result served by the combined process's result-store and its history
 * written by its audit; SIGTERM stops every service of the process and it exits 0; a bad selection exits 78 naming
 * the problem; a worker in the process runs a handler declared isolation "thread" from the combined bundle's own
 * thread entry. Needs `pnpm build` first.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTaskClient, Priority, TaskState } from "@tm/proto";
import {
  REPO_ROOT,
  type SpawnedCombined,
  type SpawnedService,
  spawnCombined,
  spawnService,
  useInfra,
  waitFor,
} from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";

const COMBINED = ["scheduler", "result-store", "notifier", "audit", "deadletter"];
// A type whose handler runs in a worker thread (isolation "thread"): every service accepts it, every worker runs it.
const dir = mkdtempSync(join(tmpdir(), "tm-combined-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const handlers = join(dir, "handlers.mjs");
writeFileSync(
  handlers,
  `import { isMainThread } from "node:worker_threads";
  export default { type: "thread-echo", isolation: "thread", run: (payload) => ({ ...payload, inThread: !isMainThread }) };`,
);
const OWN_TYPES = { TASK_TYPES: "thread-echo", WORKER_HANDLER_MODULES: handlers };
const infra = useInfra();
const separate: SpawnedService[] = [];
let combined: SpawnedCombined;
let gateway: SpawnedService;

beforeAll(async () => {
  const base = { NATS_URL: infra.nats.url, REDIS_URL: infra.redis.url, ...OWN_TYPES };
  // The combined process first: its scheduler creates the streams before the others race to.
  combined = await spawnCombined(COMBINED, base);
  const enricher = await spawnService("enricher", base);
  separate.push(enricher);
  const others = await Promise.all([
    spawnService("gateway", base),
    spawnService("ingest", { ...base, ENRICHER_URL: `http://127.0.0.1:${enricher.port}` }),
    spawnService("worker", base),
  ]);
  separate.push(...others);
  gateway = others[0];
});

afterAll(async () => {
  await Promise.all([...separate.map((s) => s.process.stop()), combined?.process.stop()]);
});

test("a task goes through with five of the stages sharing one process", async () => {
  const client = createTaskClient({ baseUrl: `http://127.0.0.1:${gateway.port}` });
  const { taskId } = await client.submitTask({ type: "echo", payload: { hello: "combined" }, priority: Priority.HIGH });
  const states: string[] = [];
  for await (const update of client.streamTaskStatus({ taskId }, { signal: AbortSignal.timeout(30_000) })) {
    states.push(TaskState[update.status?.state ?? 0] ?? "?");
  }
  expect(states.at(-1)).toBe("SUCCEEDED");

  // Served by the combined process's result-store (the notifier shows SUCCEEDED only once the result is stored).
  const resultPort = combined.services["result-store"]?.port;
  const response = await fetch(`http://127.0.0.1:${resultPort}/results/${taskId}`);
  expect(response.status).toBe(200);
  expect(await response.json()).toMatchObject({ taskId, type: "echo", output: { hello: "combined" }, attempts: 1 });

  // Written by the combined process's audit, each stage's event when it gets there (the result-store's
  // result_stored may come before the worker's succeeded, which follows its result): wait for all of them.
  const redis = new Redis(infra.redis.url);
  const expected = ["submitted", "ingested", "scheduled", "succeeded", "result_stored"];
  try {
    let actions: string[] = [];
    await waitFor("every stage's audit event in the task's history", async () => {
      actions = (await redis.lrange(`task_history:${taskId}`, 0, -1)).map((entry) => JSON.parse(entry).action);
      return expected.every((action) => actions.includes(action));
    });
    expect(actions).toEqual(expect.arrayContaining(expected));
  } finally {
    redis.disconnect();
  }

  // Every service of the process answers its own ops routes, on its own port.
  for (const [name, { opsPort }] of Object.entries(combined.services)) {
    const metrics = await fetch(`http://127.0.0.1:${opsPort}/metrics`);
    expect(metrics.status, name).toBe(200);
    expect(await metrics.text(), name).toContain("tm_");
  }
});

test("a bad selection or a shared port stops the process with exit code 78 and names the problem", async () => {
  const run = (env: NodeJS.ProcessEnv) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ["dist/bundle/index.js"], {
        cwd: join(REPO_ROOT, "services", "combined"),
        env: { ...process.env, NATS_URL: infra.nats.url, REDIS_URL: infra.redis.url, ...env },
      });
      let stderr = "";
      child.stderr.on("data", (chunk) => (stderr += chunk));
      child.on("close", (code) => resolve({ code, stderr }));
    });
  const unknown = await run({ TM_SERVICES: "scheduler,billing" });
  expect(unknown.code).toBe(78);
  expect(unknown.stderr).toContain('combined: TM_SERVICES: unknown service "billing"');

  const sharedPort = await run({ TM_SERVICES: "scheduler,audit", OPS_PORT: "18999" });
  expect(sharedPort.code).toBe(78);
  expect(sharedPort.stderr).toContain("OPS_PORT would give 2 services one port: set it per service instead");

  // A bad value of one service's own variable names that service.
  const badValue = await run({ TM_SERVICES: "audit", AUDIT__AUDIT_CONCURRENCY: "lots" });
  expect(badValue.code).toBe(78);
  expect(badValue.stderr).toMatch(/combined: audit: .*AUDIT_CONCURRENCY/s);
});

test("a worker asking for a fresh process (WORKER_MAX_ABANDONED_HANDLERS) stops the whole process, which exits 75", async () => {
  // The separate worker would take the task too: this process's worker alone runs it.
  await separate.find((service) => service.name === "worker")?.process.stop();
  const restarting = await spawnCombined(["worker", "audit"], {
    NATS_URL: infra.nats.url,
    REDIS_URL: infra.redis.url,
    WORKER__WORKER_MAX_ABANDONED_HANDLERS: "1",
  });
  try {
    const client = createTaskClient({ baseUrl: `http://127.0.0.1:${gateway.port}` });
    // A sleep that ignores its signal, past its 1 s attempt timeout: abandoned.
    await client.submitTask({
      type: "sleep",
      payload: { ms: 120_000, ignoreSignal: true },
      timeout: { seconds: 1n, nanos: 0 },
    });
    expect(await restarting.process.exited()).toBe(75);
    for (const [name, { opsPort }] of Object.entries(restarting.services)) {
      await expect(fetch(`http://127.0.0.1:${opsPort}/healthz`), name).rejects.toThrow();
    }
  } finally {
    await restarting.process.stop();
  }
});

test("a handler declared isolation thread runs in a thread of the combined process's worker (its own thread entry)", async () => {
  // The separate worker would take the task too: this process's worker alone runs it.
  await separate.find((service) => service.name === "worker")?.process.stop();
  const withWorker = await spawnCombined(["worker"], {
    NATS_URL: infra.nats.url,
    REDIS_URL: infra.redis.url,
    ...OWN_TYPES,
  });
  try {
    const client = createTaskClient({ baseUrl: `http://127.0.0.1:${gateway.port}` });
    const { taskId } = await client.submitTask({ type: "thread-echo", payload: { n: 1 } });
    let last: TaskState | undefined;
    for await (const update of client.streamTaskStatus({ taskId }, { signal: AbortSignal.timeout(30_000) })) {
      last = update.status?.state;
    }
    expect(last).toBe(TaskState.SUCCEEDED);
    const { task } = await client.getTask({ taskId });
    expect(task?.result).toEqual({ n: 1, inThread: true });
  } finally {
    await withWorker.process.stop();
  }
});

test("SIGTERM stops every service of the process and it exits 0", async () => {
  const { process: child } = combined;
  const exited = new Promise<number | null>((resolve) => child.child?.once("exit", (code) => resolve(code)));
  child.child?.kill("SIGTERM");
  // Its last output says why, if it did not stop cleanly. (It ran into its hard deadline about once in 20 runs, every
  // ops server's close waiting on a connection: kit closeApp now closes those after a grace.)
  expect(await exited, child.tail()).toBe(0);
  for (const [name, { opsPort }] of Object.entries(combined.services)) {
    await expect(fetch(`http://127.0.0.1:${opsPort}/healthz`), name).rejects.toThrow();
  }
});
