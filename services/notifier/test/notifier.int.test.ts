import { createPublisher, type Publisher, publishStatus, Subjects, statusEvent } from "@tm/flow";
import { startService } from "@tm/kit";
import { Keys, parseStatusMessage, readStatus, type StoredStatus, saveResult } from "@tm/store";
import { serviceEnv, useClients, useInfra, useStarted, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, test } from "vitest";
import { notifier } from "../src/service.js";

const infra = useInfra();
// A long result wait: the hold test below must see the update held however slow the machine is; the other tests
// store each task's result before its SUCCEEDED, as the worker does.
const service = useStarted(() => startService(notifier, serviceEnv(infra, { NOTIFIER_RESULT_WAIT_MS: "30000" })));
const clients = useClients(infra);
let subscriber: Redis;
let publisher: Publisher;

beforeAll(() => {
  publisher = createPublisher(clients.nc);
  subscriber = new Redis(infra.redis.url);
});
afterAll(() => subscriber?.disconnect());

/** Collects what the notifier publishes on the task's channel. */
async function listen(taskId: string): Promise<StoredStatus[]> {
  const received: StoredStatus[] = [];
  subscriber.on("message", (channel: string, text: string) => {
    const status = parseStatusMessage(text);
    if (channel === Keys.statusChannel(taskId) && status) received.push(status);
  });
  await subscriber.subscribe(Keys.statusChannel(taskId));
  return received;
}

async function storeResult(taskId: string, generation = 0): Promise<void> {
  const now = new Date().toISOString();
  await saveResult(clients.redis, {
    taskId,
    type: "echo",
    priority: "medium",
    output: { ok: true },
    attempts: 1,
    startedAt: now,
    completedAt: now,
    durationMs: 1,
    generation,
  });
}

/** Resolves once the notifier has consumed and acknowledged everything published on events.status so far. */
async function drained(): Promise<void> {
  const jsm = await clients.nc.jetstreamManager();
  const last = (await jsm.streams.info("EVENTS", { subjects_filter: Subjects.status })).state.last_seq;
  await waitFor("the notifier to acknowledge every status event", async () => {
    const info = await jsm.consumers.info("EVENTS", "notifier-events-status");
    return info.ack_floor.stream_seq >= last && info.num_ack_pending === 0;
  });
}

test("a late RUNNING after SUCCEEDED is ignored; subscribers get only applied updates, in version order", async () => {
  const taskId = crypto.randomUUID();
  const received = await listen(taskId);
  const source = "test";
  // Each update is consumed before the next is sent, so which ones apply does not depend on the consumer's
  // concurrency: the late RUNNING really arrives after SUCCEEDED.
  await publishStatus(publisher, { taskId, state: "PENDING", source });
  await drained();
  await publishStatus(publisher, { taskId, state: "SCHEDULED", source });
  await drained();
  await storeResult(taskId);
  await publishStatus(publisher, { taskId, state: "SUCCEEDED", source, attempt: 1 });
  await drained();
  await publishStatus(publisher, { taskId, state: "RUNNING", source, attempt: 1, progress: 50 });
  await drained();

  const stored = await readStatus(clients.redis, taskId);
  expect(stored?.state).toBe("SUCCEEDED");
  expect(stored?.progress).toBe(100);

  await waitFor("three published updates", () => received.length >= 3);
  expect(received.map((status) => status.state)).toEqual(["PENDING", "SCHEDULED", "SUCCEEDED"]);
  const versions = received.map((status) => status.version);
  expect(versions).toEqual([...versions].sort((a, b) => a - b));
  expect(new Set(versions).size).toBe(versions.length);
});

test("a duplicate update (new message id, same version) is not republished", async () => {
  const taskId = crypto.randomUUID();
  const received = await listen(taskId);
  const running = statusEvent({ taskId, state: "RUNNING", source: "test", attempt: 1, progress: 10 });
  // Two distinct messages carrying the same update, as a stage republishing after a crash would send.
  await publisher.publish(Subjects.status, running, { msgId: `${taskId}:dup:1` });
  await publisher.publish(Subjects.status, running, { msgId: `${taskId}:dup:2` });
  await drained();
  await storeResult(taskId);
  await publishStatus(publisher, { taskId, state: "SUCCEEDED", source: "test", attempt: 1 });

  await waitFor("the terminal update published", () => received.some((status) => status.state === "SUCCEEDED"));
  expect(received.map((status) => status.state)).toEqual(["RUNNING", "SUCCEEDED"]);

  const metrics = await (await fetch(`http://127.0.0.1:${service.value.opsPort}/metrics`)).text();
  expect(metrics).toMatch(/tm_status_updates_total\{[^}]*outcome="ignored"[^}]*\} [1-9]/);
  expect(metrics).toMatch(/tm_status_updates_total\{[^}]*outcome="applied"[^}]*\} [1-9]/);
});

test("SUCCEEDED is made visible only once the task's result is stored", async () => {
  const taskId = crypto.randomUUID();
  const received = await listen(taskId);
  await publishStatus(publisher, { taskId, state: "RUNNING", source: "test", attempt: 1 });
  await waitFor("RUNNING applied", async () => (await readStatus(clients.redis, taskId))?.state === "RUNNING");
  await publishStatus(publisher, { taskId, state: "SUCCEEDED", source: "test", attempt: 1 });
  // The notifier holds it: the result is not stored yet (checked while the update is in its hands).
  await waitFor("the notifier to hold the SUCCEEDED update", async () => {
    const info = await (await clients.nc.jetstreamManager()).consumers.info("EVENTS", "notifier-events-status");
    return info.num_ack_pending === 1;
  });
  expect((await readStatus(clients.redis, taskId))?.state).toBe("RUNNING");
  await storeResult(taskId);
  // Well inside NOTIFIER_RESULT_WAIT_MS (30 s): applied because the result appeared, not because the wait ran out.
  await waitFor(
    "SUCCEEDED applied right after the result is stored",
    async () => {
      return (await readStatus(clients.redis, taskId))?.state === "SUCCEEDED";
    },
    { timeoutMs: 10_000 },
  );
  // The pub/sub message reaches the subscriber's own connection independently of the read above: wait for it too.
  await waitFor("the terminal update published", () => received.some((status) => status.state === "SUCCEEDED"));
  expect(received.map((s) => s.state)).toEqual(["RUNNING", "SUCCEEDED"]);
});

test("a first generation's SUCCEEDED whose result is stored takes the status script alone: no separate result check", async () => {
  const taskId = crypto.randomUUID();
  await storeResult(taskId);
  await publishStatus(publisher, { taskId, state: "RUNNING", source: "test", attempt: 1 });
  await waitFor("RUNNING applied", async () => (await readStatus(clients.redis, taskId))?.state === "RUNNING");
  await drained();
  // What clients send (not what scripts call inside Redis: MONITOR marks those "lua"), while SUCCEEDED is applied.
  // From a connection that is ready first: its own ready check (INFO) reported by the new MONITOR connection while
  // that one is still starting confused ioredis once in CI ("Command queue state error"). That one is closed too.
  const base = new Redis(infra.redis.url);
  await base.ping();
  const monitor = await base.monitor();
  const sent: string[] = [];
  monitor.on("monitor", (_time: string, args: string[], source: string) => {
    if (source !== "lua") sent.push(String(args[0]).toLowerCase());
  });
  try {
    await publishStatus(publisher, { taskId, state: "SUCCEEDED", source: "test", attempt: 1 });
    await waitFor("SUCCEEDED applied", async () => (await readStatus(clients.redis, taskId))?.state === "SUCCEEDED");
    // The monitor reports in execution order: once it shows the script, it has shown any check made before it.
    await waitFor("the monitor to report the status script", async () => sent.includes("evalsha"));
  } finally {
    monitor.disconnect();
    base.disconnect();
  }
  expect(sent.filter((command) => command === "exists" || command === "get")).toEqual([]);
});

test("a replayed task's SUCCEEDED waits for the result of its own generation, not an earlier one", async () => {
  const taskId = crypto.randomUUID();
  // Generation 0's result is stored (it failed later, say, and was replayed): it must not release generation 1's update.
  await storeResult(taskId, 0);
  await publishStatus(publisher, { taskId, state: "RUNNING", source: "test", attempt: 1, generation: 1 });
  await waitFor("RUNNING applied", async () => (await readStatus(clients.redis, taskId))?.state === "RUNNING");
  await publishStatus(publisher, { taskId, state: "SUCCEEDED", source: "test", attempt: 1, generation: 1 });
  await waitFor("the notifier to hold the SUCCEEDED update", async () => {
    const info = await (await clients.nc.jetstreamManager()).consumers.info("EVENTS", "notifier-events-status");
    return info.num_ack_pending === 1;
  });
  expect((await readStatus(clients.redis, taskId))?.state).toBe("RUNNING");
  await storeResult(taskId, 1);
  await waitFor(
    "SUCCEEDED applied once generation 1's result is stored",
    async () => (await readStatus(clients.redis, taskId))?.state === "SUCCEEDED",
    { timeoutMs: 10_000 },
  );
});
