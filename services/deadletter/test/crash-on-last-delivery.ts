/**
 * A "stage" that takes a tasks.ingest message on its last delivery (MaxDeliver 1) and dies without acknowledging it,
 * as the deadletter service's advisory path has to cover. Shared by the tests of that path.
 */
import { createPublisher, STREAMS, Subjects, storedMessageId, type TaskMessage } from "@tm/flow";
import { AckPolicy, type NatsConnection, nanos } from "nats";
import { expect } from "vitest";

export const CRASHING_DURABLE = "crashing-stage";

/**
 * Publishes a task, delivers it once to the crashing durable and returns with a surviving replica's pull under way:
 * nats-server 2.9 notices the exhausted message (and advises) only when it next tries to deliver on that consumer.
 * `replicaPull` resolves to null: the message is never delivered again. `letterId` is the id its dead letter gets.
 */
export async function crashOnLastDelivery(nc: NatsConnection, payload: Record<string, unknown> = {}) {
  const jsm = await nc.jetstreamManager();
  await jsm.consumers.add(STREAMS.tasks, {
    durable_name: CRASHING_DURABLE,
    filter_subject: Subjects.ingest,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(1_000),
    max_deliver: 1,
  });
  const task: TaskMessage = {
    taskId: crypto.randomUUID(),
    type: "echo",
    priority: "high",
    payload,
    metadata: {},
    createdAt: new Date().toISOString(),
    generation: 0,
  };
  const ack = await createPublisher(nc).publish(Subjects.ingest, task, { msgId: `${task.taskId}:ingest` });
  const consumer = await nc.jetstream().consumers.get(STREAMS.tasks, CRASHING_DURABLE);
  const delivered = await consumer.next({ expires: 5_000 });
  expect(delivered?.seq).toBe(ack.seq); // ...and the "stage" dies without acknowledging it.
  const replicaPull = consumer.next({ expires: 3_000 });
  // The id its dead letter gets: the message's sequence and the time the stream stored it.
  const stored = await jsm.streams.getMessage(STREAMS.tasks, { seq: ack.seq });
  const letterId = storedMessageId(STREAMS.tasks, ack.seq, Date.parse(stored.timestamp));
  return { task, ack, replicaPull, letterId };
}
