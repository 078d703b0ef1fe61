import { createPublisher, decodeMessage, type EnrichedTaskMessage, Subjects } from "@tm/flow";
import { startService } from "@tm/kit";
import { readStatus } from "@tm/store";
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
  const publisher = createPublisher(clients.nc.jetstream());
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
