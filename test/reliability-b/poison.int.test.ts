/**
 * Poison and bad input on every stream subject, with the whole pipeline running: malformed JSON, JSON that fails the
 * subject's schema, and a ~900 KB body (accepted by nats-server, whose max_payload is 1 MB) whose free-form field
 * exceeds the size limits of pkg/flow's schemas. Each is terminated on its first delivery (never redelivered) and
 * reported once in Redis dead_letter with reason "invalid" and an error naming the problem; a poison message on
 * events.deadletter produces one dead letter about it and no more (no cycle); every service keeps running and still
 * processes valid tasks.
 */
import { randomUUID } from "node:crypto";
import { ALL_SUBJECTS, type Subject, storedMessageId } from "@tm/flow";
import { readDeadLetters, type StoredDeadLetter } from "@tm/store";
import { waitFor } from "@tm/testkit";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { collectStream, type Pipeline, startPipeline, stateNames } from "../support/pipeline.js";

const BIG = "x".repeat(900 * 1024);
const now = () => new Date().toISOString();
const enrichment = () => ({
  payloadBytes: 2,
  payloadSha256: "0".repeat(64),
  fieldCount: 0,
  receivedAt: now(),
  enrichedAt: now(),
});
const task = () => ({ taskId: randomUUID(), type: "echo", priority: "medium", payload: {}, createdAt: now() });

/** A body that is valid on the subject except that one free-form field is ~900 KB; and that field's name. */
const OVERSIZED: Record<Subject, () => { body: object; field: string }> = {
  "tasks.ingest": () => ({ body: { ...task(), payload: { big: BIG } }, field: "payload" }),
  "tasks.schedule": () => ({ body: { ...task(), enrichment: enrichment(), payload: { big: BIG } }, field: "payload" }),
  "tasks.worker.high": () => ({ body: { ...task(), enrichment: { ...enrichment(), big: BIG } }, field: "enrichment" }),
  "tasks.worker.medium": () => ({
    body: { ...task(), enrichment: enrichment(), payload: { big: BIG } },
    field: "payload",
  }),
  "tasks.worker.low": () => ({
    body: {
      ...task(),
      enrichment: enrichment(),
      metadata: Object.fromEntries(Array.from({ length: 800 }, (_, i) => [`k${i}`, BIG.slice(0, 1000)])),
    },
    field: "metadata",
  }),
  "tasks.results": () => ({
    body: {
      ...task(),
      output: { big: BIG },
      attempts: 1,
      startedAt: now(),
      completedAt: now(),
      durationMs: 1,
    },
    field: "output",
  }),
  "events.status": () => ({
    body: { taskId: randomUUID(), state: "RUNNING", version: 1, updatedAt: now(), source: "poison", error: BIG },
    field: "error",
  }),
  "events.audit": () => ({
    body: { service: "poison", action: "test", at: now(), detail: { big: BIG } },
    field: "detail",
  }),
  "events.deadletter": () => ({
    body: {
      id: "POISON:1",
      subject: "tasks.ingest",
      consumer: "poison",
      reason: "exhausted",
      error: "poison",
      attempts: 1,
      at: now(),
      message: { big: BIG },
    },
    field: "message",
  }),
};

interface Injected {
  subject: Subject;
  kind: "malformed" | "schema" | "oversized";
  /** The dead letter's id: `<stream>:<sequence>` of the poison message. */
  letterId: string;
  /** What the dead letter's error must mention. */
  expectInError: string;
}

let pipeline: Pipeline;
let nc: NatsConnection;

beforeAll(async () => {
  // Every service its own process (no ownProcess), though none is stopped: every stage receives its poison at once,
  // and in one shared process under a busy machine the oversized ones outlasted AckWait (redelivered, attempts 4).
  pipeline = await startPipeline();
  nc = await connect({ servers: pipeline.nats.url });
}, 90_000);
afterAll(async () => {
  await nc?.close();
  await pipeline?.dispose();
});

describe("poison and bad input on every subject", () => {
  test("each is dead-lettered once as invalid, never redelivered, never cycles; the pipeline keeps working", async () => {
    const js = nc.jetstream();
    const jsm = await nc.jetstreamManager();
    const injected: Injected[] = [];
    for (const subject of ALL_SUBJECTS) {
      const oversized = OVERSIZED[subject]();
      const bodies: Array<[Injected["kind"], string, string]> = [
        ["malformed", '{"taskId": "unterminated', "malformed JSON"],
        ["schema", JSON.stringify({ taskId: "not-a-uuid", surprise: true }), "taskId: must be a UUID"],
        ["oversized", JSON.stringify(oversized.body), `${oversized.field}:`],
      ];
      for (const [kind, body, expectInError] of bodies) {
        const ack = await js.publish(subject, new TextEncoder().encode(body));
        // Its dead letter's id: the message's sequence and the time the stream stored it.
        const stored = await jsm.streams.getMessage(ack.stream, { seq: ack.seq });
        const letterId = storedMessageId(ack.stream, ack.seq, Date.parse(stored.timestamp));
        injected.push({ subject, kind, letterId, expectInError });
      }
    }
    expect(injected).toHaveLength(27);

    const letters = new Map<string, StoredDeadLetter>();
    await waitFor(
      "a dead letter for every poison message",
      async () => {
        for (const letter of await readDeadLetters(pipeline.redisClient, 0, 1000)) letters.set(letter.id, letter);
        return injected.every((i) => letters.has(i.letterId));
      },
      { timeoutMs: 30_000 },
    );
    for (const { subject, kind, letterId, expectInError } of injected) {
      const letter = letters.get(letterId)!;
      const what = `${kind} on ${subject}: ${letter.error}`;
      expect(letter.reason, what).toBe("invalid");
      expect(letter.subject, what).toBe(subject);
      expect(letter.error, what).toContain(`invalid ${subject} message`);
      expect(letter.error, what).toContain(expectInError);
      // Terminated on the first delivery: never retried.
      expect(letter.attempts, what).toBe(1);
      // What is copied into Redis is bounded, whatever the size of the poison.
      expect(JSON.stringify(letter).length, what).toBeLessThan(64 * 1024);
    }

    // Nothing left pending or unacknowledged on any consumer of either stream.
    await waitFor(
      "every consumer drained",
      async () => {
        for (const stream of ["TASKS", "EVENTS"]) {
          for await (const consumer of jsm.consumers.list(stream)) {
            if (consumer.num_pending > 0 || consumer.num_ack_pending > 0) return false;
          }
        }
        return true;
      },
      { timeoutMs: 20_000 },
    );
    for (const stream of ["TASKS", "EVENTS"]) {
      for await (const consumer of jsm.consumers.list(stream)) {
        expect(consumer.num_redelivered, consumer.name).toBe(0);
      }
    }

    // No cycle: events.deadletter holds the 3 poison messages and exactly one letter per poison message (27).
    // Anything more would be a dead letter about a dead letter about ... .
    const countDeadLetterSubject = async () =>
      (await jsm.streams.info("EVENTS", { subjects_filter: "events.deadletter" })).state.subjects?.[
        "events.deadletter"
      ] ?? 0;
    expect(await countDeadLetterSubject()).toBe(3 + 27);
    const stored = (await readDeadLetters(pipeline.redisClient, 0, 1000)).length;
    expect(stored).toBe(27);

    // Every service still runs and still works.
    for (const [name, service] of pipeline.services) expect(service.process.running, name).toBe(true);
    const tasks = await Promise.all([
      pipeline.client.submitTask({ type: "echo", payload: { after: "poison" } }),
      pipeline.client.submitTask({ type: "checksum", payload: { data: "abc", rounds: 2 } }),
    ]);
    for (const { taskId } of tasks) {
      expect(stateNames(await collectStream(pipeline.client, taskId)).at(-1)).toBe("SUCCEEDED");
      expect((await fetch(`${pipeline.resultStoreUrl}/results/${taskId}`)).status).toBe(200);
    }
    // Still no new dead letters on the subject (the valid tasks created none; nothing kept cycling meanwhile).
    expect(await countDeadLetterSubject()).toBe(3 + 27);
  });
});
