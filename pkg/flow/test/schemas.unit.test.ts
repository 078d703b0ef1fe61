import { trace } from "@opentelemetry/api";
import { describe, expect, test } from "vitest";
import {
  decodeMessage,
  extractTrace,
  injectTrace,
  MessageValidationError,
  retryDelayFor,
  Subjects,
  statusEvent,
  traceIdOf,
  validateMessage,
} from "../src/index.js";

const encode = (value: unknown) => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));

function task(overrides: Record<string, unknown> = {}) {
  return {
    taskId: "6f1c1b7e-2f7a-4c1e-9d8a-0b6f3e2a1c4d",
    type: "echo",
    priority: "high",
    payload: { a: 1 },
    createdAt: "2026-01-01T00:00:00.000Z",
    ...overrides,
  };
}

describe("message schemas", () => {
  test("accept a valid task and fill defaults", () => {
    const message = decodeMessage(Subjects.ingest, encode(task()));
    expect(message.metadata).toEqual({});
    expect(message.generation).toBe(0);
  });

  test("reject malformed JSON naming the problem", () => {
    expect(() => decodeMessage(Subjects.ingest, encode("{oops"))).toThrowError(
      /invalid tasks.ingest message: malformed JSON/,
    );
  });

  test("name every bad field with its path", () => {
    try {
      decodeMessage(Subjects.ingest, encode(task({ taskId: "nope", payload: [1], priority: "urgent" })));
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(MessageValidationError);
      const problems = (error as MessageValidationError).problems;
      expect(problems).toMatch(/taskId: must be a UUID/);
      expect(problems).toMatch(/payload: /);
      expect(problems).toMatch(/priority: /);
    }
  });

  test("a task message keeps fields this version does not know (a later version's), on every task subject", () => {
    const later = task({ priorityBoost: 3, tenant: { id: "t-1" } });
    const enrichment = {
      payloadBytes: 7,
      payloadSha256: "0".repeat(64),
      fieldCount: 1,
      receivedAt: "2026-01-01T00:00:00.000Z",
      enrichedAt: "2026-01-01T00:00:00.000Z",
    };
    expect(decodeMessage(Subjects.ingest, encode(later))).toMatchObject({ priorityBoost: 3, tenant: { id: "t-1" } });
    for (const subject of [Subjects.schedule, Subjects.workerHigh, Subjects.workerLow]) {
      expect(validateMessage(subject, { ...later, enrichment })).toMatchObject({ priorityBoost: 3 });
    }
    // Known fields are checked as ever; a __proto__ key is dropped, not applied.
    expect(() => validateMessage(Subjects.ingest, task({ maxAttempts: 0, extra: 1 }))).toThrowError(/maxAttempts/);
    const hostile = decodeMessage(
      Subjects.ingest,
      encode(`{"__proto__":{"polluted":1},${JSON.stringify(task()).slice(1)}`),
    );
    expect(Object.getPrototypeOf(hostile)).toBe(Object.prototype);
    expect((hostile as { polluted?: number }).polluted).toBeUndefined();
    // Other subjects keep their exact shape.
    const status = validateMessage(Subjects.status, {
      ...statusEvent({ taskId: later.taskId, state: "RUNNING", source: "worker" }),
      unknownField: 1,
    });
    expect(status).not.toHaveProperty("unknownField");
  });

  test("worker subjects require the enrichment", () => {
    expect(() => validateMessage(Subjects.workerHigh, task())).toThrowError(/enrichment: /);
  });

  test("status events bound progress to 0-100 and require a known state", () => {
    const base = {
      taskId: task().taskId,
      state: "RUNNING",
      progress: 50,
      version: 1,
      updatedAt: "2026-01-01T00:00:00Z",
      source: "worker",
    };
    expect(validateMessage(Subjects.status, base).progress).toBe(50);
    expect(() => validateMessage(Subjects.status, { ...base, progress: 101 })).toThrowError(/progress/);
    expect(() => validateMessage(Subjects.status, { ...base, state: "DONE" })).toThrowError(/state/);
  });

  test("a non-object body is rejected as a whole", () => {
    expect(() => decodeMessage(Subjects.results, encode("[]"))).toThrowError(/\(body\)/);
  });
});

describe("trace context", () => {
  test("round-trips through a message body", () => {
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const parent = extractTrace({ traceparent: `00-${traceId}-b7ad6b7169203331-01` });
    const carrier = injectTrace(parent);
    expect(traceIdOf(carrier.traceparent)).toBe(traceId);
    expect(trace.getSpanContext(extractTrace(carrier))?.traceId).toBe(traceId);
  });

  test("without a context a fresh valid traceparent is minted", () => {
    const { traceparent } = injectTrace();
    expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  test("minted trace ids stay unique across many refills of the random pool", () => {
    const ids = new Set(Array.from({ length: 5_000 }, () => traceIdOf(injectTrace().traceparent)));
    expect(ids.size).toBe(5_000);
  });

  test("a garbage traceparent yields no parent", () => {
    expect(trace.getSpanContext(extractTrace({ traceparent: "garbage" }))).toBeUndefined();
  });
});

describe("retry delays", () => {
  test("follow the contract's schedule and repeat the last", () => {
    const delays = [1_000, 5_000, 15_000, 30_000, 60_000];
    expect([1, 2, 3, 4, 5, 6].map((n) => retryDelayFor(n, delays))).toEqual([
      1_000, 5_000, 15_000, 30_000, 60_000, 60_000,
    ]);
  });
});
