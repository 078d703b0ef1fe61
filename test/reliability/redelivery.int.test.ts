/**
 * Fault: a stage that crashes after its effect but before its ack, so the same message comes again. The moment
 * cannot be timed with a real SIGKILL, so the mechanisms are proven directly:
 *  - the scheduler handling the same task twice (a redelivery: same content, whatever its message id) publishes
 *    one tasks.worker.* message, because its publish carries the msgId `${taskId}:worker:${generation}`;
 *  - for the sinks (result-store, notifier, audit, deadletter) the test plays the crashed replica: it pulls the
 *    message from the service's own durable, applies the service's write, and never acks; JetStream redelivers it
 *    after AckWait to the real service, which must not apply it a second time.
 */
import {
  createPublisher,
  type DeadLetter,
  durableName,
  messageIdOf,
  publishAudit,
  publishStatus,
  type ResultMessage,
  StatusEventSchema,
  type Subject,
  Subjects,
  streamOf,
} from "@tm/flow";
import { TaskState } from "@tm/proto";
import { appendAudit, appendDeadLetter, applyStatus, Keys, readDeadLetters, readResult, saveResult } from "@tm/store";
import { waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import type { JsMsg, NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { collectStream, type Pipeline, type ServiceName, startPipeline, stateNames } from "../support/pipeline.js";
import { actionsOf, connectTo, countByTask, waitDrained } from "../support/reliability.js";

let pipeline: Pipeline;
let nc: NatsConnection;

beforeAll(async () => {
  // The sinks are stopped, started again and their /metrics read: their own processes; the rest share one.
  pipeline = await startPipeline({ ownProcess: ["result-store", "notifier", "audit", "deadletter"] });
  nc = await connectTo(pipeline.nats.url);
}, 90_000);
afterAll(async () => {
  await nc?.close();
  await pipeline?.dispose();
});

/** The first message for `taskId` on `subject`, read from the stream (not from a service's durable). */
async function messageOf(subject: Subject, taskId: string): Promise<{ body: Record<string, unknown> }> {
  const consumer = await nc.jetstream().consumers.get(streamOf(subject), { filterSubjects: subject });
  const messages = await consumer.consume();
  try {
    for await (const msg of messages) {
      const body = msg.json<Record<string, unknown>>();
      if (body.taskId === taskId) return { body };
    }
  } finally {
    await messages.close();
  }
  throw new Error(`no ${subject} message for ${taskId}`);
}

describe("a redelivered message has one effect", () => {
  test("the scheduler handling a task twice queues one tasks.worker message", async () => {
    const { taskId } = await pipeline.client.submitTask({ type: "echo", payload: { once: true } });
    expect(stateNames(await collectStream(pipeline.client, taskId)).at(-1)).toBe("SUCCEEDED");
    const { body } = await messageOf(Subjects.schedule, taskId);

    // The same content under a new message id: the stream accepts it, so the scheduler really handles it again.
    const js = nc.jetstream();
    const ack = await js.publish(Subjects.schedule, JSON.stringify(body), { msgID: `${taskId}:redelivery-probe` });
    expect(ack.duplicate).toBe(false);
    await waitDrained(nc, "scheduler", Subjects.schedule);

    expect((await countByTask(nc, "TASKS", "tasks.worker.>")).get(taskId)).toBe(1);
    // The repeated SCHEDULED update is older than SUCCEEDED: the status does not move backwards.
    expect((await pipeline.client.getTask({ taskId })).task?.status?.state).toBe(TaskState.SUCCEEDED);
  });

  test("result-store, notifier, audit and deadletter apply a message redelivered after a crash once", async () => {
    const sinks = ["result-store", "notifier", "audit", "deadletter"] as const satisfies readonly ServiceName[];
    // The real services are down while the test plays their crashed replica.
    await Promise.all(sinks.map((name) => pipeline.services.get(name)!.process.stop()));

    const taskId = crypto.randomUUID();
    const publisher = createPublisher(nc);
    const now = new Date().toISOString();
    const result: ResultMessage = {
      taskId,
      type: "echo",
      priority: "medium",
      output: { crash: "probe" },
      attempts: 1,
      startedAt: now,
      completedAt: now,
      durationMs: 1,
      generation: 0,
    };
    await publisher.publish(Subjects.results, result, { msgId: `${taskId}:result:0` });
    await publishStatus(publisher, { taskId, state: "RUNNING", attempt: 1, source: "crash-probe" });
    await publishAudit(publisher, { taskId, service: "crash-probe", action: "crash_probe" });
    const letter: DeadLetter = {
      id: `PROBE:${taskId}`,
      taskId,
      subject: Subjects.workerMedium,
      consumer: "worker",
      reason: "rejected",
      error: "crash probe",
      attempts: 1,
      at: now,
    };
    await publisher.publish(Subjects.deadletter, letter, { msgId: `${taskId}:deadletter:probe` });

    // Status updates are published on the task's channel only when applied: count them.
    const subscriber = new Redis(pipeline.redis.url);
    const published: string[] = [];
    await subscriber.subscribe(Keys.statusChannel(taskId));
    subscriber.on("message", (_channel, text) => published.push(text));

    // The crashed replicas: each pulls from the service's durable, writes as the service would, and dies unacked.
    const pulled: JsMsg[] = [];
    const pull = async (service: string, subject: Subject, apply: (msg: JsMsg) => Promise<unknown>) => {
      const consumer = await nc.jetstream().consumers.get(streamOf(subject), durableName(service, subject));
      for (;;) {
        const msg = await consumer.next({ expires: 5_000 });
        if (!msg) throw new Error(`nothing to pull for ${service}`);
        if (msg.json<{ taskId?: string }>().taskId !== taskId) {
          msg.ack(); // older traffic of this file, long handled
          continue;
        }
        await apply(msg);
        pulled.push(msg);
        return;
      }
    };
    await pull("result-store", Subjects.results, async (msg) => {
      await saveResult(pipeline.redisClient, msg.json<ResultMessage>());
      await publishAudit(publisher, { taskId, service: "result-store", action: "result_stored", discriminator: 0 });
    });
    await pull("notifier", Subjects.status, (msg) =>
      applyStatus(pipeline.redisClient, StatusEventSchema.parse(msg.json())),
    );
    await pull("audit", Subjects.audit, (msg) =>
      appendAudit(pipeline.redisClient, msg.json(), messageIdOf(msg, Subjects.audit)),
    );
    await pull("deadletter", Subjects.deadletter, (msg) => appendDeadLetter(pipeline.redisClient, msg.json()));
    expect(pulled).toHaveLength(4);

    // Restarted, each service gets its message again after AckWait, and acks it without a second effect.
    await Promise.all(sinks.map((name) => pipeline.spawn(name)));
    for (const [service, subject] of [
      ["result-store", Subjects.results],
      ["notifier", Subjects.status],
      ["audit", Subjects.audit],
      ["deadletter", Subjects.deadletter],
    ] as const) {
      await waitDrained(nc, service, subject);
    }
    await waitDrained(nc, "audit", Subjects.audit);

    expect((await readResult(pipeline.redisClient, taskId))?.output).toEqual({ crash: "probe" });
    expect(await actionsOf(pipeline.redisClient, taskId, "result_stored")).toHaveLength(1);
    expect(await actionsOf(pipeline.redisClient, taskId, "crash_probe")).toHaveLength(1);
    expect((await readDeadLetters(pipeline.redisClient, 0, 1000)).filter((l) => l.id === letter.id)).toHaveLength(1);
    await waitFor("the applied status published", () => published.length >= 1);
    expect(published).toHaveLength(1);
    subscriber.disconnect();

    // And each service did see the redelivery: its counter recorded it as a duplicate (or stale) message.
    for (const [name, metric] of [
      ["result-store", /^tm_results_total\{[^}]*outcome="duplicate"[^}]*\} [1-9]/m],
      ["notifier", /^tm_status_updates_total\{[^}]*outcome="ignored"[^}]*\} [1-9]/m],
      ["audit", /^tm_audit_events_total\{[^}]*outcome="duplicate"[^}]*\} [1-9]/m],
      ["deadletter", /^tm_dead_letters_total\{[^}]*outcome="duplicate"[^}]*\} [1-9]/m],
    ] as const) {
      const service = pipeline.services.get(name)!;
      await waitFor(`${name} counted the redelivery`, async () =>
        metric.test(await (await fetch(`http://127.0.0.1:${service.opsPort}/metrics`)).text()),
      );
    }
  });
});
