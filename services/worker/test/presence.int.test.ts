/**
 * The worker's report of itself (worker:<id>, for ListWorkers) against a real nats-server and redis-server: written
 * at start, listing the task it runs (type, priority, attempt, start) and its paused queues, and removed when it stops;
 * a worker stopping while Redis is down stops promptly, its report left to expire.
 */
import { listWorkers, pauseQueue, reportWorker, resumeQueue } from "@tm/store";
import { useClients, useInfra, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import { RunningTasks } from "../src/cancellation.js";
import { reportPresence, DEFAULT_WORKER_ID as WORKER_ID } from "../src/presence.js";
import { cancelAsGateway, capturedLog, enrichedTask, publishTask, startWorker, stopWithRedisDown } from "./support.js";

const infra = useInfra();
const clients = useClients(infra);

test("a worker reports what it runs and its paused queues while it runs, and leaves the list when it stops", async () => {
  const worker = await startWorker(infra, {
    WORKER_CONCURRENCY: "3",
    WORKER_REPORT_INTERVAL_MS: "100",
    WORKER_PAUSE_POLL_MS: "100",
  });
  const mine = async () => (await listWorkers(clients.redis)).find((w) => w.id === WORKER_ID);
  try {
    expect(await mine()).toMatchObject({
      concurrency: 3,
      runningCount: 0,
      running: [],
      pausedQueues: [],
      abandoned: 0,
      abandonedHandlers: [],
    });
    const task = enrichedTask("sleep", { ms: 30_000 }, "high");
    const before = Date.now();
    await publishTask(clients.nc, task);
    await waitFor("the task reported running", async () => (await mine())?.runningCount === 1);
    const [running] = (await mine())!.running;
    expect(running).toMatchObject({ taskId: task.taskId, type: "sleep", priority: "high", attempt: 1 });
    expect(running!.startedAtMs).toBeGreaterThanOrEqual(before);

    await pauseQueue(clients.redis, "low", "ops");
    await waitFor("the paused queue reported", async () => (await mine())?.pausedQueues.join() === "low");
    await resumeQueue(clients.redis, "low");

    await cancelAsGateway(clients.redis, clients.nc, task.taskId, "test done");
    await waitFor("the task no longer reported", async () => (await mine())?.runningCount === 0);
  } finally {
    await worker.stop();
  }
  expect(await mine()).toBeUndefined();
});

test("a worker stopping while Redis is down stops promptly: its report expires by itself", async () => {
  const worker = await startWorker(infra, { WORKER_REPORT_INTERVAL_MS: "100" });
  await waitFor("the first report", async () => (await listWorkers(clients.redis)).some((w) => w.id === WORKER_ID));
  expect(await stopWithRedisDown(infra, worker)).toBe("stopped");
  await waitFor("the report expired", async () => !(await listWorkers(clients.redis)).some((w) => w.id === WORKER_ID));
});

test("a worker starting under an id another live worker reports under (on another host) says so", async () => {
  const { log, lines } = capturedLog("info");
  const start = (id: string) =>
    reportPresence({
      id,
      redis: clients.redis,
      running: new RunningTasks(),
      dispatcher: { queued: () => 0, paused: () => false, quiet: false },
      concurrency: 1,
      abandoned: () => 0,
      intervalMs: 1_000,
      log,
    });
  const clash = (line: string) => line.includes("another live worker reports under this id");
  const now = Date.now();
  await reportWorker(
    clients.redis,
    {
      id: "shared-id",
      host: "elsewhere",
      pid: 1,
      startedAtMs: now,
      concurrency: 1,
      queued: 0,
      pausedQueues: [],
      runningCount: 0,
      running: [],
      seenAtMs: now,
    },
    60_000,
  );
  const shared = start("shared-id");
  await shared.ready;
  expect(lines.filter(clash)).toHaveLength(1);
  expect(lines.find(clash)).toContain('"otherHost":"elsewhere"');
  // Its own former report (same host and pid, as a restarted pod's) is no clash.
  const again = start("shared-id");
  await again.ready;
  expect(lines.filter(clash)).toHaveLength(1);
  await again.stop();
  await shared.stop();
});
