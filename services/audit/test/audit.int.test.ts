import { type AuditEvent, createPublisher, STREAMS, Subjects, storedMessageId } from "@tm/flow";
import { loadConfig, startService } from "@tm/kit";
import { appendAudit, Keys, readHistory } from "@tm/store";
import { serviceEnv, useClients, useInfra, useStarted, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import { audit } from "../src/service.js";

const infra = useInfra();
useStarted(() => startService(audit, serviceEnv(infra)));
const clients = useClients(infra);

test("audit events land in audit_events and, in order, in the task's history with its TTL", async () => {
  const publisher = createPublisher(clients.nc);
  const taskId = crypto.randomUUID();
  const actions = ["accepted", "ingested", "scheduled", "started", "succeeded", "result_stored"];
  for (const action of actions) {
    await publisher.publish(
      Subjects.audit,
      { taskId, service: "test", action, at: new Date().toISOString() },
      { msgId: `${taskId}:audit:${action}` },
    );
  }
  await publisher.publish(
    Subjects.audit,
    { service: "test", action: "no_task", at: new Date().toISOString() },
    { msgId: "no-task:audit" },
  );

  await waitFor(
    "all audit events stored",
    async () => (await clients.redis.llen(Keys.auditEvents)) === actions.length + 1,
  );
  const history = await readHistory(clients.redis, taskId);
  expect(history.map((event) => event.action)).toEqual(actions);
  const ttl = await clients.redis.ttl(Keys.history(taskId));
  expect(ttl).toBeGreaterThan(6 * 24 * 3600);
  const newestFirst = (await clients.redis.lrange(Keys.auditEvents, 0, -1)).map(
    (line) => JSON.parse(line) as AuditEvent,
  );
  expect(newestFirst.some((event) => event.action === "no_task" && event.taskId === undefined)).toBe(true);
  expect(newestFirst.filter((event) => event.taskId === taskId).map((event) => event.action)).toEqual(
    [...actions].reverse(),
  );
});

test("a redelivery of the same message is not stored twice; the same sequence stored at another time is stored", async () => {
  const publisher = createPublisher(clients.nc);
  const taskId = crypto.randomUUID();
  const ack = await publisher.publish(
    Subjects.audit,
    { taskId, service: "test", action: "once", at: new Date().toISOString() },
    { msgId: `${taskId}:audit:once` },
  );
  await waitFor("the event in the task history", async () => (await clients.redis.llen(Keys.history(taskId))) === 1);
  const before = await clients.redis.llen(Keys.auditEvents);

  // What the service does when the same delivery comes back (a crash between the write and the ack): the same id,
  // from the message's sequence and the time the stream stored it.
  const stored = await (await clients.nc.jetstreamManager()).streams.getMessage(STREAMS.events, { seq: ack.seq });
  const id = storedMessageId(STREAMS.events, ack.seq, Date.parse(stored.timestamp));
  const event: AuditEvent = { taskId, service: "test", action: "once", at: new Date().toISOString() };
  expect(await appendAudit(clients.redis, event, id)).toBe(false);
  // The same sequence stored at another time is another message (a stream created again numbers from 1 again).
  expect(await appendAudit(clients.redis, event, storedMessageId(STREAMS.events, ack.seq, Date.now() + 1))).toBe(true);
  expect(await clients.redis.llen(Keys.history(taskId))).toBe(2);
  expect(await clients.redis.llen(Keys.auditEvents)).toBe(before + 1);
});

/** Script calls (EVALSHA, or EVAL before the script is cached) Redis has served so far. */
async function scriptCalls(): Promise<number> {
  const stats = await clients.redis.info("commandstats");
  return [...stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

test("events that arrive a few ms apart are appended in a few gathered script calls, not one call each", async () => {
  const publisher = createPublisher(clients.nc);
  // One event per task, as at a paced rate: one task's events are appended one after another (orderKey), so only
  // events of different tasks can share a call.
  const taskIds = Array.from({ length: 20 }, () => crypto.randomUUID());
  const before = await scriptCalls();
  // A paced trickle, 5 ms apart (~100 ms in all): without the 50 ms window each event would arrive, and be
  // appended, on its own.
  for (const taskId of taskIds) {
    await publisher.publish(
      Subjects.audit,
      { taskId, service: "test", action: "paced", at: new Date().toISOString() },
      { msgId: `${taskId}:audit:paced` },
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await waitFor("every event in its task's history", async () => {
    const lengths = await Promise.all(taskIds.map((taskId) => clients.redis.llen(Keys.history(taskId))));
    return lengths.every((length) => length === 1);
  });
  expect(await scriptCalls()).toBeLessThanOrEqual(before + taskIds.length / 2);
});

test("AUDIT_GATHER_MS defaults to 50 ms, 0 turns gathering off, and a bad value names the variable", () => {
  const shape = audit.config ?? {};
  expect(loadConfig(shape, {}).AUDIT_GATHER_MS).toBe(50);
  expect(loadConfig(shape, { AUDIT_GATHER_MS: "0" }).AUDIT_GATHER_MS).toBe(0);
  expect(() => loadConfig(shape, { AUDIT_GATHER_MS: "-1" })).toThrow("AUDIT_GATHER_MS: must be >= 0");
});
