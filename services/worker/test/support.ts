/** Helpers shared by the worker's integration tests: task messages and a reader of what landed in the streams. */

import { Writable } from "node:stream";
import {
  CANCEL_SUBJECT,
  createPublisher,
  type DeadLetter,
  decodeMessage,
  type EnrichedTaskMessage,
  type Priority,
  type ResultMessage,
  type StatusEvent,
  Subjects,
  workerSubject,
} from "@tm/flow";
import { createLogger, startService } from "@tm/kit";
import { markCancelled } from "@tm/store";
import type { Infra } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { afterAll, beforeAll } from "vitest";
import { worker } from "../src/service.js";

/** The worker in this process against the file's servers: quick retries and AckWait, the ops server on a free port;
 *  `env` adds to or overrides that. */
export function startWorker(infra: Infra, env: Record<string, string> = {}) {
  return startService(worker, {
    NATS_URL: infra.nats.url,
    REDIS_URL: infra.redis.url,
    LOG_LEVEL: "warn",
    OPS_PORT: "0",
    FLOW_ACK_WAIT_MS: "2000",
    FLOW_RETRY_DELAYS_MS: "100,200,300,400,500",
    ...env,
  });
}

/** A worker started for a test file, with the clients its tests watch it through. */
export interface WatchedWorker {
  service: Awaited<ReturnType<typeof startWorker>>;
  nc: NatsConnection;
  jsm: JetStreamManager;
  redis: Redis;
  /** What landed in the EVENTS and TASKS streams (refresh() before reading). */
  events: StreamReader;
  tasks: StreamReader;
}

/** Starts the worker (as startWorker) and its watchers before the file's tests, and stops them after; the returned
 *  object is filled in by then. */
export function useWatchedWorker(infra: Infra, env: Record<string, string> = {}): WatchedWorker {
  const watched = {} as WatchedWorker;
  beforeAll(async () => {
    watched.service = await startWorker(infra, env);
    watched.nc = await connect({ servers: infra.nats.url });
    watched.jsm = await watched.nc.jetstreamManager();
    watched.redis = new Redis(infra.redis.url);
    watched.events = new StreamReader(watched.jsm, "EVENTS");
    watched.tasks = new StreamReader(watched.jsm, "TASKS");
  });
  afterAll(async () => {
    await watched.service?.stop();
    await watched.nc?.drain();
    watched.redis?.disconnect();
  });
  return watched;
}

export function enrichedTask(type: string, payload: Record<string, unknown>, priority: Priority = "medium") {
  const now = new Date().toISOString();
  return {
    taskId: crypto.randomUUID(),
    type,
    priority,
    payload,
    metadata: {},
    createdAt: now,
    generation: 0,
    enrichment: { payloadBytes: 2, payloadSha256: "0".repeat(64), fieldCount: 0, receivedAt: now, enrichedAt: now },
  } satisfies EnrichedTaskMessage;
}

export async function publishTask(nc: NatsConnection, task: EnrichedTaskMessage): Promise<void> {
  await createPublisher(nc).publish(workerSubject(task.priority), task, {
    msgId: `${task.taskId}:worker:${task.generation}`,
  });
}

/** The gateway's cancel notice for a task on CANCEL_SUBJECT: the broadcast alone, no marker. */
export function publishCancelNotice(nc: NatsConnection, taskId: string, reason = "test"): void {
  nc.publish(CANCEL_SUBJECT, JSON.stringify({ taskId, reason, at: new Date().toISOString() }));
}

/** Cancels a task as the gateway does: its marker in Redis, then the notice. */
export async function cancelAsGateway(redis: Redis, nc: NatsConnection, taskId: string, reason = "test") {
  await markCancelled(redis, taskId, reason);
  publishCancelNotice(nc, taskId, reason);
}

interface Stored {
  subject: string;
  seq: number;
  data: Uint8Array;
}

/** Reads a stream incrementally (by sequence), so polling it in waitFor stays cheap. */
export class StreamReader {
  #next = 1;
  readonly #messages: Stored[] = [];
  constructor(
    private readonly jsm: JetStreamManager,
    private readonly stream: "TASKS" | "EVENTS",
  ) {}

  async refresh(): Promise<void> {
    const last = (await this.jsm.streams.info(this.stream)).state.last_seq;
    for (; this.#next <= last; this.#next++) {
      const msg = await this.jsm.streams.getMessage(this.stream, { seq: this.#next });
      this.#messages.push({ subject: msg.subject, seq: msg.seq, data: msg.data });
    }
  }

  #decoded<S extends typeof Subjects.results | typeof Subjects.status | typeof Subjects.deadletter>(subject: S) {
    return this.#messages.filter((m) => m.subject === subject).map((m) => decodeMessage(subject, m.data));
  }

  results(taskId: string): ResultMessage[] {
    return this.#decoded(Subjects.results).filter((r) => r.taskId === taskId);
  }

  /** Result task ids in the order they were stored. */
  resultOrder(): string[] {
    return this.#decoded(Subjects.results).map((r) => r.taskId);
  }

  statuses(taskId: string): StatusEvent[] {
    return this.#decoded(Subjects.status).filter((s) => s.taskId === taskId);
  }

  deadLetters(taskId: string): DeadLetter[] {
    return this.#decoded(Subjects.deadletter).filter((d) => d.taskId === taskId);
  }

  audits(taskId: string): Array<{ action: string; detail?: Record<string, unknown>; at: string }> {
    return this.#messages
      .filter((m) => m.subject === Subjects.audit)
      .map((m) => decodeMessage(Subjects.audit, m.data))
      .filter((a) => a.taskId === taskId);
  }
}

/** A worker logger whose lines (JSON, one per entry) are kept in `lines` for a test to read. */
export function capturedLog(level: "debug" | "info" = "debug") {
  const lines: string[] = [];
  const log = createLogger(
    "worker",
    level,
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  return { log, lines };
}

/** Stops `service` while the file's redis-server is down (started again after): how the stop ended, "stopped" or
 *  "still stopping after 10 s" (a stop that waits out Redis's reconnect budget). */
export async function stopWithRedisDown(infra: Infra, service: { stop(): Promise<void> }): Promise<string> {
  await infra.redis.stop();
  try {
    return await Promise.race([
      service.stop().then(() => "stopped"),
      new Promise<string>((resolve) => setTimeout(() => resolve("still stopping after 10 s"), 10_000)),
    ]);
  } finally {
    await infra.redis.start();
  }
}
