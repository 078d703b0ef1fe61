import { ConnectError } from "@connectrpc/connect";
import {
  type AuditEvent,
  type DeadLetter,
  decodeMessage,
  type StatusEvent,
  StatusEventSchema,
  type StatusUpdate,
  type Subject,
  Subjects,
  statusEvent,
} from "@tm/flow";
import { startService } from "@tm/kit";
import { type AdminClient, createAdminClient, createTaskClient, type TaskClient } from "@tm/proto";
import type { Infra } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, type NatsConnection, type StoredMsg } from "nats";
import { afterAll, beforeAll } from "vitest";
import { gateway } from "../src/service.js";

export type Gateway = Awaited<ReturnType<typeof startGateway>>;

/** A gateway in this process on free ports, against the file's infra. */
export async function startGateway(infra: Infra, env: Record<string, string> = {}) {
  const service = await startService(gateway, {
    NATS_URL: infra.nats.url,
    REDIS_URL: infra.redis.url,
    GRPC_PORT: "0",
    GATEWAY_WEB_PORT: "0",
    OPS_PORT: "0",
    LOG_LEVEL: "warn",
    ...env,
  });
  return { ...service, baseUrl: `http://127.0.0.1:${service.started.grpcPort}` };
}

/** A gateway started for a test file, with clients on it (filled in before the file's tests). */
export interface FileGateway {
  gateway: Gateway;
  /** An AdminService client. */
  admin: AdminClient;
  /** A TaskService client. */
  client: TaskClient;
}

/**
 * Starts a gateway (as startGateway) before the file's tests (or a describe block's) and stops it after; its clients
 * send `apiKey` when given.
 */
export function useGateway(
  infra: Infra,
  env: Record<string, string> = {},
  { apiKey }: { apiKey?: string } = {},
): FileGateway {
  const used = {} as FileGateway;
  beforeAll(async () => {
    used.gateway = await startGateway(infra, env);
    const options = { baseUrl: used.gateway.baseUrl, apiKey };
    used.admin = createAdminClient(options);
    used.client = createTaskClient(options);
  });
  afterAll(async () => {
    await used.gateway?.stop();
  });
  return used;
}

/** A NATS connection and a Redis client on the file's servers, opened before its tests and closed after them. */
export function useClients(infra: Infra): { nc: NatsConnection; redis: Redis } {
  const clients = {} as { nc: NatsConnection; redis: Redis };
  beforeAll(async () => {
    clients.nc = await connect({ servers: infra.nats.url });
    clients.redis = new Redis(infra.redis.url);
  });
  afterAll(async () => {
    await clients.nc?.drain();
    clients.redis?.disconnect();
  });
  return clients;
}

/** A status event as the notifier would apply it. */
export function event(update: Omit<StatusUpdate, "source">): StatusEvent {
  return StatusEventSchema.parse(statusEvent({ ...update, source: "test-notifier" }));
}

export interface StreamMessage<S extends Subject> {
  message: ReturnType<typeof decodeMessage<S>>;
  msgId: string | undefined;
  /** When the stream stored it. */
  storedAt: Date;
}

/** Every message a stream holds now, oldest first (one pass: a message removed meanwhile is skipped). */
export async function* storedMessagesOf(nc: NatsConnection, stream: string): AsyncGenerator<StoredMsg> {
  const jsm = await nc.jetstreamManager();
  const { state } = await jsm.streams.info(stream);
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    const stored = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
    if (stored) yield stored;
  }
}

/** The messages of one subject and task currently in a stream, oldest first, with their Nats-Msg-Id. */
export async function streamMessagesOf<S extends Subject>(
  nc: NatsConnection,
  stream: string,
  subject: S,
  taskId: string,
): Promise<StreamMessage<S>[]> {
  const found: StreamMessage<S>[] = [];
  for await (const stored of storedMessagesOf(nc, stream)) {
    if (stored.subject !== subject) continue;
    const message = decodeMessage(subject, stored.data);
    if ((message as { taskId?: string }).taskId === taskId) {
      found.push({ message, msgId: stored.header?.get("Nats-Msg-Id") || undefined, storedAt: stored.time });
    }
  }
  return found;
}

/** The actions of the audit events in EVENTS that `matches` takes (admin changes have no task), oldest first. */
export async function auditActionsOf(nc: NatsConnection, matches: (event: AuditEvent) => boolean): Promise<string[]> {
  const actions: string[] = [];
  for await (const stored of storedMessagesOf(nc, "EVENTS")) {
    if (stored.subject !== Subjects.audit) continue;
    const event = decodeMessage(Subjects.audit, stored.data);
    if (matches(event)) actions.push(event.action);
  }
  return actions;
}

/** An echo task's dead letter as the deadletter service writes it when ingest gave up (the enricher was down). */
export function ingestDeadLetter(taskId: string, id: string): DeadLetter {
  return {
    id,
    taskId,
    subject: Subjects.ingest,
    consumer: "ingest",
    reason: "exhausted",
    error: "enricher unavailable",
    attempts: 5,
    at: new Date().toISOString(),
    message: { taskId, type: "echo", priority: "medium", payload: {}, generation: 0 },
  };
}

/** The error a call failed with, as a ConnectError; throws when the call succeeded. */
export async function rejection(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}
