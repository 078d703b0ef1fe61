/**
 * A quiet worker (worker_quiet:<id>, as AdminService QuietWorker writes it) against a real nats-server and
 * redis-server: it hands back what it holds buffered, which another worker runs as attempt 1 (max_attempts 1
 * included), finishes what it runs, takes nothing new while quiet, and takes tasks again once resumed. A new process
 * of the same id starts un-quiet.
 */
import { handBacksOf, listWorkers, pauseQueue, resumeQueue, setWorkerQuiet } from "@tm/store";
import { useClients, useInfra, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import { enrichedTask, publishTask, StreamReader, startWorker } from "./support.js";

const infra = useInfra();
const clients = useClients(infra);
const FAST = { WORKER_CONCURRENCY: "2", WORKER_PAUSE_POLL_MS: "100", WORKER_REPORT_INTERVAL_MS: "100" };
const mark = { at: new Date().toISOString(), by: "ops" };

async function reportOf(id: string) {
  return (await listWorkers(clients.redis)).find((worker) => worker.id === id);
}

/** The worker's tm_worker_quiet gauge, read from its /metrics. */
async function quietGauge(opsPort: number | undefined): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  const match = /^tm_worker_quiet(?:\{[^}]*\})? (\d+)/m.exec(text);
  return match ? Number(match[1]) : undefined;
}

test("a quiet worker hands back its buffer to the others, finishes its tasks, takes none, and takes them again resumed", async () => {
  const events = new StreamReader(await clients.nc.jetstreamManager(), "EVENTS");
  /** The worker that ran the task to its end, from its succeeded audit (undefined: not ended yet). */
  const ranBy = async (taskId: string) => {
    await events.refresh();
    const done = events.audits(taskId).find((a) => a.action === "succeeded");
    return done?.detail?.worker as string | undefined;
  };
  const a = await startWorker(infra, { ...FAST, WORKER_ID: "quiet-a" });
  let b: Awaited<ReturnType<typeof startWorker>> | undefined;
  try {
    expect(await quietGauge(a.opsPort)).toBe(0);
    const busy = [enrichedTask("sleep", { ms: 1_500 }), enrichedTask("sleep", { ms: 1_500 })];
    for (const task of busy) await publishTask(clients.nc, task);
    await waitFor("both busy tasks running on a", async () => (await reportOf("quiet-a"))?.runningCount === 2);
    const buffered = [{ ...enrichedTask("echo", { n: 1 }), maxAttempts: 1 }, enrichedTask("echo", { n: 2 })];
    for (const task of buffered) await publishTask(clients.nc, task);
    await waitFor("both buffered on a", () => a.started.dispatcher.queued("medium") === 2);

    expect(await setWorkerQuiet(clients.redis, "quiet-a", true, mark)).toBe(true);
    await waitFor("a quiet, its buffer handed back", () => a.started.dispatcher.quiet);
    expect(a.started.dispatcher.queued("medium")).toBe(0);
    await waitFor("a reporting itself quiet", async () => (await reportOf("quiet-a"))?.quiet === true);
    expect(await quietGauge(a.opsPort)).toBe(1);

    b = await startWorker(infra, { ...FAST, WORKER_ID: "quiet-b" });
    for (const task of buffered)
      await waitFor(`${task.taskId} run`, async () => (await ranBy(task.taskId)) !== undefined);
    for (const task of buffered) {
      expect(await ranBy(task.taskId)).toBe("quiet-b");
      expect(events.statuses(task.taskId).map((s) => `${s.state}:${s.attempt}`)).toEqual(["RUNNING:1", "SUCCEEDED:1"]);
    }
    // What it ran when it went quiet, it finished.
    for (const task of busy) await waitFor(`${task.taskId} run`, async () => (await ranBy(task.taskId)) === "quiet-a");

    // With b gone, a task waits: a takes nothing while quiet, through several of its polls.
    await b.stop();
    b = undefined;
    const waiting = enrichedTask("echo", { n: 3 });
    await publishTask(clients.nc, waiting);
    // A queue paused and resumed meanwhile wakes a's pull loops: quiet, they still pull nothing.
    await pauseQueue(clients.redis, "medium", "ops");
    await waitFor("a sees the pause", () => a.started.dispatcher.paused("medium"));
    await resumeQueue(clients.redis, "medium");
    await waitFor("a sees the resume", () => !a.started.dispatcher.paused("medium"));
    const seen = (await reportOf("quiet-a"))?.seenAtMs ?? 0;
    await waitFor("three more reports from a", async () => ((await reportOf("quiet-a"))?.seenAtMs ?? 0) > seen + 250);
    expect(a.started.dispatcher.queued("medium")).toBe(0);
    expect(await ranBy(waiting.taskId)).toBeUndefined();
    expect(events.statuses(waiting.taskId)).toEqual([]);
    // Not even pulled and handed back (each would spend one of the message's deliveries).
    expect(await handBacksOf(clients.redis, waiting.taskId, waiting.generation)).toBe(0);

    expect(await setWorkerQuiet(clients.redis, "quiet-a", false, mark)).toBe(true);
    await waitFor("the waiting task run by a, resumed", async () => (await ranBy(waiting.taskId)) === "quiet-a");
    expect(events.statuses(waiting.taskId).map((s) => `${s.state}:${s.attempt}`)).toEqual(["RUNNING:1", "SUCCEEDED:1"]);
    await waitFor("a reporting itself not quiet", async () => (await reportOf("quiet-a"))?.quiet === false);
    expect(await quietGauge(a.opsPort)).toBe(0);
  } finally {
    await b?.stop();
    await a.stop();
  }
  // Gone with the worker: its report and its mark.
  expect(await reportOf("quiet-a")).toBeUndefined();
  expect(await setWorkerQuiet(clients.redis, "quiet-a", true, mark)).toBe("not-found");
});

test("an idle worker made quiet (its pulls open on the server) takes no task and hands a delivery back once, not five times", async () => {
  const events = new StreamReader(await clients.nc.jetstreamManager(), "EVENTS");
  const idle = await startWorker(infra, { ...FAST, WORKER_ID: "quiet-idle" });
  try {
    await waitFor("reported", async () => (await reportOf("quiet-idle")) !== undefined);
    expect(await setWorkerQuiet(clients.redis, "quiet-idle", true, mark)).toBe(true);
    await waitFor("quiet", () => idle.started.dispatcher.quiet);
    // Each lane's pull, issued while it was idle, is still open on the server: a task published now reaches it.
    const task = enrichedTask("echo", { n: 5 }, "high");
    await publishTask(clients.nc, task);
    await waitFor("handed back once", async () => (await handBacksOf(clients.redis, task.taskId, 0)) === 1);
    // Delayed past the open pull's end, it did not come straight back to it (five returns exhausted it before).
    const seen = (await reportOf("quiet-idle"))?.seenAtMs ?? 0;
    await waitFor("more reports", async () => ((await reportOf("quiet-idle"))?.seenAtMs ?? 0) > seen + 300);
    expect(await handBacksOf(clients.redis, task.taskId, 0)).toBe(1);
    expect(await setWorkerQuiet(clients.redis, "quiet-idle", false, mark)).toBe(true);
    await waitFor(
      "the task run once resumed",
      async () => {
        await events.refresh();
        return events.audits(task.taskId).some((a) => a.action === "succeeded");
      },
      { timeoutMs: 20_000 },
    );
    expect(events.statuses(task.taskId).map((s) => `${s.state}:${s.attempt}`)).toEqual(["RUNNING:1", "SUCCEEDED:1"]);
    expect(events.deadLetters(task.taskId)).toEqual([]);
  } finally {
    await idle.stop();
  }
});

test("a new process of a quiet worker's id takes tasks: its first report clears the mark a former one left", async () => {
  const first = await startWorker(infra, { ...FAST, WORKER_ID: "quiet-restarted" });
  expect(await setWorkerQuiet(clients.redis, "quiet-restarted", true, mark)).toBe(true);
  await waitFor("quiet", () => first.started.dispatcher.quiet);
  // As a SIGKILLed process leaves it: no stop, so the mark stays (until its report's TTL).
  await clients.redis.set("worker_quiet:quiet-restarted", JSON.stringify(mark), "PX", 60_000);
  await first.stop();
  await clients.redis.set("worker_quiet:quiet-restarted", JSON.stringify(mark), "PX", 60_000);
  const second = await startWorker(infra, { ...FAST, WORKER_ID: "quiet-restarted" });
  try {
    expect(await clients.redis.exists("worker_quiet:quiet-restarted")).toBe(0);
    expect(second.started.dispatcher.quiet).toBe(false);
    const events = new StreamReader(await clients.nc.jetstreamManager(), "EVENTS");
    const task = enrichedTask("echo", { n: 4 });
    await publishTask(clients.nc, task);
    await waitFor("the task run", async () => {
      await events.refresh();
      return events.audits(task.taskId).some((a) => a.action === "succeeded");
    });
  } finally {
    await second.stop();
  }
});
