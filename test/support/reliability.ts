/**
 * Observations shared by the fault tests (test/reliability): how many messages a subject holds for a task, whether
 * a durable has nothing left to deliver, what the audit trail says happened, which worker runs a task, and a client
 * that resubmits with the same idempotency key while the gateway answers UNAVAILABLE.
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { durableName, isTerminal, type Subject, Subjects, streamOf } from "@tm/flow";
import { type TaskClient, unprocessedCause } from "@tm/proto";
import { Keys, parseStatusHash, readHistory, type StoredStatus } from "@tm/store";
import { type SpawnedService, waitFor } from "@tm/testkit";
import type { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";

type SubmitRequest = Parameters<TaskClient["submitTask"]>[0];

/** A spawned worker's tm_worker_in_flight gauge (tasks running in it), read from its /metrics. */
export async function workerInFlight(worker: SpawnedService): Promise<number> {
  const metrics = await (await fetch(`http://127.0.0.1:${worker.opsPort}/metrics`)).text();
  const line = metrics.split("\n").find((l) => l.startsWith("tm_worker_in_flight"));
  if (!line) throw new Error(`no tm_worker_in_flight on ${worker.process.options.name}'s /metrics`);
  return Number(line.slice(line.lastIndexOf(" ") + 1));
}

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
 *  retry after a lost response never creates a second task. Returns the task id and how many attempts it took.
 *  Given several clients (gateway replicas, as a balancer such as Envoy sees them), the first attempt goes to
 *  `clients[first]` and each retry to the next one, so a replica that is stopping is left for another; `failedOn`
 *  lists the index of the client of every failed attempt. */
export async function submitUntilAccepted(
  clients: TaskClient | readonly TaskClient[],
  request: SubmitRequest & { idempotencyKey: string },
  deadlineMs = 60_000,
  first = 0,
): Promise<{ taskId: string; attempts: number; failedOn: number[]; reasons: string[] }> {
  const replicas = Array.isArray(clients) ? clients : [clients as TaskClient];
  const deadline = Date.now() + deadlineMs;
  const failedOn: number[] = [];
  const reasons: string[] = [];
  for (let attempts = 1; ; attempts++) {
    const index = (first + attempts - 1) % replicas.length;
    try {
      const { taskId } = await replicas[index]!.submitTask(request, { signal: AbortSignal.timeout(10_000) });
      return { taskId, attempts, failedOn, reasons };
    } catch (error) {
      const reason = retryableFailure(error);
      if (!reason || Date.now() > deadline) throw error;
      failedOn.push(index);
      reasons.push(reason);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** Node errors of the connection under a call: the server refused or never got it, or the connection went away. */
const CONNECTION_ERRORS = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ERR_HTTP2_GOAWAY_SESSION"]);

/**
 * Why a failed SubmitTask may be sent again (with its idempotency key), or undefined when it must not: UNAVAILABLE,
 * a deadline or cancellation, or a connection error. An HTTP/2 REFUSED_STREAM (a stream the client opened as the
 * server's GOAWAY was on its way; the server processed none of it) arrives as UNAVAILABLE from @tm/proto's client
 * (connect-node alone says INTERNAL); it is labelled by its Node cause so the figures tell it apart. A reset
 * connection, which connect-node reports as ABORTED, is recognised by its cause too.
 */
function retryableFailure(error: unknown): string | undefined {
  const connectError = ConnectError.from(error);
  const unprocessed = unprocessedCause(connectError.cause) as NodeJS.ErrnoException | undefined;
  if (unprocessed?.code === "ERR_HTTP2_STREAM_ERROR") return "REFUSED_STREAM";
  for (let cause: unknown = connectError.cause; cause instanceof Error; cause = cause.cause) {
    const nodeCode = (cause as NodeJS.ErrnoException).code;
    if (nodeCode && CONNECTION_ERRORS.has(nodeCode)) return nodeCode;
  }
  const { code } = connectError;
  if (code === Code.Unavailable || code === Code.DeadlineExceeded || code === Code.Canceled) return Code[code];
  return undefined;
}

export interface Load {
  /** Resolves with every task id once each submission was accepted. */
  accepted: Promise<string[]>;
  /** Submissions that needed more than one attempt (they met the outage). */
  retriedSubmissions(): number;
  /** Per client (gateway replica): how many attempts it failed, each retried on the next client. */
  failedAttempts(): number[];
  /** Why attempts failed and were retried (a gRPC code, or the connection error), with how many times. */
  retryReasons(): Record<string, number>;
}

/** Submits `count` small tasks (echo, and short sleeps), one every `intervalMs` without waiting for the previous
 *  one, each with its own idempotency key; `onSubmitted(i)` runs after the i-th submission was started. `count` may
 *  be a predicate instead: submission i is made while `count(i)` holds (a load that lasts until a fault is over,
 *  however long that takes). With several clients, submission i goes to `clients[i % n]` (round robin) and is
 *  retried on the next one. */
export function steadyLoad(
  clients: TaskClient | readonly TaskClient[],
  count: number | ((index: number) => boolean),
  intervalMs: number,
  onSubmitted: (index: number) => void = () => undefined,
): Load {
  let retried = 0;
  const failed = Array.isArray(clients) ? clients.map(() => 0) : [0];
  const submissions: Promise<string>[] = [];
  const reasons = new Map<string, number>();
  const accepted = (async () => {
    const more = typeof count === "number" ? (i: number) => i < count : count;
    for (let i = 0; more(i); i++) {
      const idempotencyKey = `load-${crypto.randomUUID()}`;
      const request: SubmitRequest & { idempotencyKey: string } =
        i % 2 === 0
          ? { type: "echo", payload: { i }, idempotencyKey }
          : { type: "sleep", payload: { ms: 50 }, idempotencyKey };
      const submission = submitUntilAccepted(clients, request, 60_000, i % failed.length).then(
        ({ taskId, attempts, failedOn, reasons: why }) => {
          if (attempts > 1) retried++;
          for (const index of failedOn) failed[index]!++;
          for (const reason of why) reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
          return taskId;
        },
      );
      // Observed by Promise.all below; this only keeps an early failure from being reported as unhandled.
      submission.catch(() => undefined);
      submissions.push(submission);
      onSubmitted(i);
      // Real time passing is the point: a steady stream of submissions that spans the fault.
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
    return Promise.all(submissions);
  })();
  return {
    accepted,
    retriedSubmissions: () => retried,
    failedAttempts: () => [...failed],
    retryReasons: () => Object.fromEntries(reasons),
  };
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

/**
 * After a fault, once result-store and audit have drained: the tasks that do not have exactly one tasks.results
 * message, their result key and one result_stored audit entry ([] when every task does).
 */
export async function tasksWithoutOneResult(nc: NatsConnection, redis: Redis, taskIds: string[]) {
  await waitDrained(nc, "result-store", Subjects.results);
  await waitDrained(nc, "audit", Subjects.audit);
  const accounting = await resultAccounting(nc, redis, taskIds);
  return accounting.filter((a) => a.resultMessages !== 1 || !a.resultKey || a.resultStored !== 1);
}

/** The services that exited, each with its last log lines ([] when every one still runs). */
export function exitedServices(services: Map<string, SpawnedService>): string[] {
  return [...services]
    .filter(([, service]) => !service.process.running)
    .map(([name, service]) => `${name}:\n${service.process.tail(10)}`);
}
