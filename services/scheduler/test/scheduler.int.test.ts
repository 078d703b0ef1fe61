import { createPublisher, decodeMessage, durableName, type EnrichedTaskMessage, Subjects } from "@tm/flow";
import { startService } from "@tm/kit";
import { markCancelled, readStatus, saveTask } from "@tm/store";
import { serviceEnv, useClients, useInfra, useStarted, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import { scheduler } from "../src/service.js";

const infra = useInfra();
const service = useStarted(() => startService(scheduler, serviceEnv(infra)));
const clients = useClients(infra);

function enrichedTask(priority: "high" | "medium" | "low"): EnrichedTaskMessage {
  const now = new Date().toISOString();
  return {
    taskId: crypto.randomUUID(),
    type: "echo",
    priority,
    payload: { n: 1 },
    metadata: {},
    createdAt: now,
    generation: 0,
    enrichment: { payloadBytes: 7, payloadSha256: "0".repeat(64), fieldCount: 1, receivedAt: now, enrichedAt: now },
  };
}

test("routes each task to the queue of its priority, once, and reports SCHEDULED", async () => {
  const publisher = createPublisher(clients.nc);
  const tasks = [enrichedTask("high"), enrichedTask("medium"), enrichedTask("low")];
  for (const task of tasks) {
    await publisher.publish(Subjects.schedule, task, { msgId: `${task.taskId}:schedule` });
  }
  const jsm = await clients.nc.jetstreamManager();
  await waitFor("three worker messages", async () => (await jsm.streams.info("TASKS")).state.messages >= 6);
  for (const task of tasks) {
    const subject = `tasks.worker.${task.priority}`;
    const stored = await jsm.streams.getMessage("TASKS", { last_by_subj: subject });
    expect(decodeMessage(Subjects.workerHigh, stored.data).taskId).toBe(task.taskId);
    await waitFor("SCHEDULED status event", async () => {
      const info = await jsm.streams.info("EVENTS", { subjects_filter: "events.status" });
      return (info.state.subjects?.["events.status"] ?? 0) >= 3;
    });
  }
  // The ops server answers readiness with both dependencies up.
  const ready = await fetch(`http://127.0.0.1:${service.value.opsPort}/readyz`);
  expect(ready.status).toBe(200);
  expect(await readStatus(clients.redis, tasks[0]!.taskId)).toBeUndefined(); // the notifier, not the scheduler, writes status
});

test("a field this version does not know (a later gateway's) reaches the worker's queue: a rolling upgrade keeps it", async () => {
  const task = { ...enrichedTask("low"), laterField: { tenant: "t-1" } };
  await clients.nc.jetstream().publish(Subjects.schedule, JSON.stringify(task), { msgID: `${task.taskId}:schedule` });
  const jsm = await clients.nc.jetstreamManager();
  let forwarded: Record<string, unknown> | undefined;
  await waitFor("the worker message", async () => {
    const stored = await jsm.streams.getMessage("TASKS", { last_by_subj: "tasks.worker.low" }).catch(() => undefined);
    forwarded = stored?.json<Record<string, unknown>>();
    return forwarded?.taskId === task.taskId;
  });
  expect(forwarded).toMatchObject({ laterField: { tenant: "t-1" }, taskId: task.taskId, priority: "low" });
});

/** Publishes `task` to the scheduler and expects it dropped: only the audit event `action`, no status, no worker
 *  message, the delivery acknowledged. */
async function expectDropped(
  task: EnrichedTaskMessage,
  action: string,
  subjects = ["events.audit"],
): Promise<Array<Record<string, unknown>>> {
  const publisher = createPublisher(clients.nc);
  const seen: Array<{ subject: string; taskId?: string; action?: string }> = [];
  const sub = clients.nc.subscribe("events.>");
  const workerSub = clients.nc.subscribe("tasks.worker.>");
  for (const source of [sub, workerSub]) {
    void (async () => {
      for await (const msg of source) seen.push({ subject: msg.subject, ...msg.json<{ taskId?: string }>() });
    })();
  }
  await clients.nc.flush();
  try {
    await publisher.publish(Subjects.schedule, task, { msgId: `${task.taskId}:schedule:${task.generation}` });
    await waitFor(`the ${action} audit event`, () => seen.some((m) => m.taskId === task.taskId && m.action === action));
    const jsm = await clients.nc.jetstreamManager();
    await waitFor("the delivery acknowledged", async () => {
      const info = await jsm.consumers.info("TASKS", durableName("scheduler", Subjects.schedule));
      return info.num_ack_pending === 0 && info.num_pending === 0;
    });
    // The audit is the handler's last step on this path: nothing for the task was or will be published after it.
    const mine = seen.filter((m) => m.taskId === task.taskId);
    expect(mine.map((m) => m.subject)).toEqual(subjects);
    return mine;
  } finally {
    sub.unsubscribe();
    workerSub.unsubscribe();
  }
}

test("a task cancelled while it waited is acknowledged and dropped: audit skipped_cancelled, no worker message", async () => {
  const task = enrichedTask("medium");
  await markCancelled(clients.redis, task.taskId, "cancelled by the test");
  await expectDropped(task, "skipped_cancelled");
});

test("an older generation's message (the task requeued since) is dropped: audit skipped_superseded, no worker message", async () => {
  const task = { ...enrichedTask("high"), generation: 1 };
  await saveTask(clients.redis, { ...task, generation: 2 });
  const [audit] = await expectDropped(task, "skipped_superseded");
  expect(audit).toMatchObject({ service: "scheduler", detail: { generation: 1 } });
  // The current generation's message is routed as usual.
  const current = { ...task, generation: 2 };
  const jsm = await clients.nc.jetstreamManager();
  await createPublisher(clients.nc).publish(Subjects.schedule, current, { msgId: `${task.taskId}:schedule:2` });
  await waitFor("the current generation routed", async () => {
    const stored = await jsm.streams.getMessage("TASKS", { last_by_subj: "tasks.worker.high" }).catch(() => undefined);
    return stored !== undefined && decodeMessage(Subjects.workerHigh, stored.data).taskId === task.taskId;
  });
});

test("a task past its expires_after is ended here, CANCELLED expired, not queued for a worker", async () => {
  const dueAt = new Date(Date.now() - 10_000).toISOString();
  const task = { ...enrichedTask("low"), createdAt: dueAt, expiresAfterMs: 5_000 };
  const [status, audit] = await expectDropped(task, "expired", ["events.status", "events.audit"]);
  expect(status).toMatchObject({
    state: "CANCELLED",
    source: "scheduler",
    error: `expired: not started by ${new Date(Date.parse(dueAt) + 5_000).toISOString()} (expires_after 5000 ms)`,
  });
  expect(audit).toMatchObject({ service: "scheduler", detail: { failedAttempts: 0 } });
});
