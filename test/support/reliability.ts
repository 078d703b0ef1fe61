/**
 * Observations shared by the fault tests (test/reliability): how many messages a subject holds for a task, whether
 * a durable has nothing left to deliver, what the audit trail says happened, and a client that resubmits with the
 * same idempotency key while the gateway answers UNAVAILABLE.
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { durableName, isTerminal, type Subject, Subjects, streamOf } from "@tm/flow";
import type { TaskClient } from "@tm/proto";
import { Keys, parseStatusHash, readHistory, type StoredStatus } from "@tm/store";
import { waitFor } from "@tm/testkit";
import type { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";

type SubmitRequest = Parameters<TaskClient["submitTask"]>[0];

export function connectTo(url: string): Promise<NatsConnection> {
  return connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
}

/** How many messages each task has on the subjects matching `filter` (read with an ordered consumer; one filter
 *  subject, a string: nats-server 2.9 ignores the 2.10 filter_subjects list and the consumer is never created). */
export async function countByTask(nc: NatsConnection, stream: string, filter: string): Promise<Map<string, number>> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(stream, { subjects_filter: filter });
  const total = Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
  const counts = new Map<string, number>();
  if (total === 0) return counts;
  const consumer = await nc.jetstream().consumers.get(stream, { filterSubjects: filter });
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
  request: SubmitRequest & { idempotencyKey: string },
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

export interface Load {
  /** Resolves with every task id once each submission was accepted. */
  accepted: Promise<string[]>;
  /** Submissions that needed more than one attempt (they met the outage). */
  retriedSubmissions(): number;
}

/** Submits `count` small tasks (echo, and short sleeps), one every `intervalMs` without waiting for the previous
 *  one, each with its own idempotency key; `onSubmitted(i)` runs after the i-th submission was started. */
export function steadyLoad(
  client: TaskClient,
  count: number,
  intervalMs: number,
  onSubmitted: (index: number) => void = () => undefined,
): Load {
  let retried = 0;
  const submissions: Promise<string>[] = [];
  const accepted = (async () => {
    for (let i = 0; i < count; i++) {
      const idempotencyKey = `load-${crypto.randomUUID()}`;
      const request: SubmitRequest & { idempotencyKey: string } =
        i % 2 === 0
          ? { type: "echo", payload: { i }, idempotencyKey }
          : { type: "sleep", payload: { ms: 50 }, idempotencyKey };
      const submission = submitUntilAccepted(client, request).then(({ taskId, attempts }) => {
        if (attempts > 1) retried++;
        return taskId;
      });
      // Observed by Promise.all below; this only keeps an early failure from being reported as unhandled.
      submission.catch(() => undefined);
      submissions.push(submission);
      onSubmitted(i);
      // Real time passing is the point: a steady stream of submissions that spans the fault.
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
    return Promise.all(submissions);
  })();
  return { accepted, retriedSubmissions: () => retried };
}

/** Waits until every task's stored status is terminal; returns the ones that did not end SUCCEEDED. */
export async function waitAllTerminal(redis: Redis, taskIds: string[], timeoutMs = 60_000): Promise<string[]> {
  let statuses: Array<StoredStatus | undefined> = [];
  const pending = () =>
    taskIds.flatMap((id, i) => (statuses[i] && isTerminal(statuses[i].state) ? [] : [`${id}:${statuses[i]?.state}`]));
  try {
    await waitFor(
      `${taskIds.length} tasks terminal`,
      async () => {
        const pipeline = redis.pipeline();
        for (const id of taskIds) pipeline.hgetall(Keys.status(id));
        const replies = (await pipeline.exec()) ?? [];
        statuses = replies.map(([, hash]) => parseStatusHash(hash as Record<string, string>));
        return pending().length === 0;
      },
      { timeoutMs, intervalMs: 250 },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; not terminal: ${pending().slice(0, 10).join(", ")}`);
  }
  return taskIds.filter((_, i) => statuses[i]?.state !== "SUCCEEDED");
}

/** Per task: its messages on tasks.results, whether task_result:<id> exists, and its result_stored audit events. */
export async function resultAccounting(nc: NatsConnection, redis: Redis, taskIds: string[]) {
  const onStream = await countByTask(nc, "TASKS", Subjects.results);
  const stored = (await redis.lrange(Keys.auditEvents, 0, -1))
    .map((line) => JSON.parse(line) as { taskId?: string; action: string })
    .filter((e) => e.action === "result_stored");
  const storedCount = new Map<string, number>();
  for (const e of stored) if (e.taskId) storedCount.set(e.taskId, (storedCount.get(e.taskId) ?? 0) + 1);
  const exists = await Promise.all(taskIds.map((id) => redis.exists(Keys.result(id))));
  return taskIds.map((taskId, i) => ({
    taskId,
    resultMessages: onStream.get(taskId) ?? 0,
    resultKey: exists[i] === 1,
    resultStored: storedCount.get(taskId) ?? 0,
  }));
}
