/**
 * Observations shared by the fault tests (test/reliability): how many messages a subject holds for a task, whether
 * a durable has nothing left to deliver, what the audit trail says happened, and a client that resubmits with the
 * same idempotency key while the gateway answers UNAVAILABLE.
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { durableName, type Subject, streamOf } from "@tm/flow";
import type { SubmitTaskRequest, TaskClient } from "@tm/proto";
import { readHistory } from "@tm/store";
import { waitFor } from "@tm/testkit";
import type { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";

export function connectTo(url: string): Promise<NatsConnection> {
  return connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
}

/** How many messages each task has on the subjects matching `filter` (read with an ordered consumer). */
export async function countByTask(nc: NatsConnection, stream: string, filter: string): Promise<Map<string, number>> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(stream, { subjects_filter: filter });
  const total = Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
  const counts = new Map<string, number>();
  if (total === 0) return counts;
  const consumer = await nc.jetstream().consumers.get(stream, { filterSubjects: [filter] });
  const messages = await consumer.consume();
  let seen = 0;
  for await (const msg of messages) {
    const { taskId } = msg.json<{ taskId?: string }>();
    if (taskId) counts.set(taskId, (counts.get(taskId) ?? 0) + 1);
    if (++seen >= total) break;
  }
  await messages.close();
  return counts;
}

/** Waits until the durable of `service` on `subject` has delivered everything and nothing awaits an ack. */
export async function waitDrained(
  nc: NatsConnection,
  service: string,
  subject: Subject,
  timeoutMs = 30_000,
): Promise<void> {
  const jsm = await nc.jetstreamManager();
  await waitFor(
    `${service} on ${subject} drained`,
    async () => {
      const info = await jsm.consumers.info(streamOf(subject), durableName(service, subject));
      return info.num_pending === 0 && info.num_ack_pending === 0;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/** The audit events of one task with the given action (e.g. result_stored). */
export async function actionsOf(redis: Redis, taskId: string, action: string) {
  return (await readHistory(redis, taskId)).filter((e) => e.action === action);
}

export function millis(ts: Timestamp | undefined): number {
  return ts ? Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6) : 0;
}

/** SubmitTask that retries an outage (UNAVAILABLE, a refused connection) with the same idempotency key, so a
 *  retry after a lost response never creates a second task. Returns the task id and how many attempts it took. */
export async function submitUntilAccepted(
  client: TaskClient,
  request: Partial<SubmitTaskRequest> & { idempotencyKey: string },
  deadlineMs = 60_000,
): Promise<{ taskId: string; attempts: number }> {
  const deadline = Date.now() + deadlineMs;
  for (let attempts = 1; ; attempts++) {
    try {
      const { taskId } = await client.submitTask(request, { signal: AbortSignal.timeout(10_000) });
      return { taskId, attempts };
    } catch (error) {
      const code = ConnectError.from(error).code;
      const retryable = code === Code.Unavailable || code === Code.DeadlineExceeded || code === Code.Canceled;
      if (!retryable || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
