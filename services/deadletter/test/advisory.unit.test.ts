import { expect, test } from "vitest";
import { EXHAUSTED_ERROR, letterFromAdvisory, parseAdvisory, taskToFail } from "../src/advisory.js";

const encode = (value: unknown) => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));
const taskId = "0b6f5b8e-8f3e-4a34-9d53-1c1f6f0e8a11";
const advisory = { stream: "TASKS", consumer: "worker-tasks-worker-high", streamSeq: 42, deliveries: 5 };

test("parses the nats-server 2.9 advisory", () => {
  const body = {
    type: "io.nats.jetstream.advisory.v1.max_deliver",
    id: "abc",
    timestamp: "2026-01-01T00:00:00Z",
    stream: "TASKS",
    consumer: "worker-tasks-worker-high",
    stream_seq: 42,
    deliveries: 5,
  };
  expect(parseAdvisory(encode(body))).toEqual(advisory);
});

test("a malformed advisory is rejected naming the problem", () => {
  expect(() => parseAdvisory("nope")).toThrow("advisory: not JSON");
  expect(() => parseAdvisory(encode({ consumer: "c", stream_seq: 1 }))).toThrow("advisory.stream");
  expect(() => parseAdvisory(encode({ stream: "S", stream_seq: 1 }))).toThrow("advisory.consumer");
  expect(() => parseAdvisory(encode({ stream: "S", consumer: "c", stream_seq: 0 }))).toThrow("advisory.stream_seq");
});

test("the letter copies the original body, its task id and trace, under the stage's id scheme", () => {
  const traceparent = `00-${"a".repeat(32)}-${"b".repeat(16)}-01`;
  const body = { taskId, type: "echo", generation: 2, traceparent };
  const now = new Date("2026-01-01T00:00:00.000Z");
  const storedAtMs = Date.parse("2025-12-31T23:59:58.123Z");
  const original = { subject: "tasks.worker.high", data: encode(body), storedAtMs };
  const reconstructed = letterFromAdvisory(advisory, original, now);
  expect(reconstructed.letter).toEqual({
    id: `TASKS:42:${storedAtMs}`,
    subject: "tasks.worker.high",
    consumer: "worker-tasks-worker-high",
    reason: "exhausted",
    error: EXHAUSTED_ERROR,
    attempts: 5,
    at: "2026-01-01T00:00:00.000Z",
    taskId,
    message: body,
    traceparent,
  });
  expect(taskToFail(reconstructed)).toEqual({ taskId, generation: 2 });
});

test("a body that is not JSON is kept as raw text, without a task to fail", () => {
  const reconstructed = letterFromAdvisory(advisory, { subject: "tasks.ingest", data: encode("{oops") });
  expect(reconstructed.letter.raw).toBe("{oops");
  expect(reconstructed.letter).not.toHaveProperty("message");
  expect(reconstructed.letter).not.toHaveProperty("taskId");
  expect(taskToFail(reconstructed)).toBeUndefined();
});

test("a message no longer in the stream still yields a letter naming it (its id without the stored time)", () => {
  const { letter } = letterFromAdvisory(advisory, undefined);
  expect(letter.id).toBe("TASKS:42");
  expect(letter.subject).toContain("sequence 42");
  expect(letter).not.toHaveProperty("message");
  expect(letter).not.toHaveProperty("raw");
});

test("only unfinished task steps fail the task: not results, not events", () => {
  const data = encode({ taskId });
  for (const subject of ["tasks.ingest", "tasks.schedule", "tasks.worker.low"]) {
    expect(taskToFail(letterFromAdvisory(advisory, { subject, data }))).toEqual({ taskId, generation: 0 });
  }
  for (const subject of ["tasks.results", "events.status", "events.audit"]) {
    expect(taskToFail(letterFromAdvisory(advisory, { subject, data }))).toBeUndefined();
  }
});
