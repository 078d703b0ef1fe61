import type { AuditEvent } from "@tm/flow";
import { describe, expect, test } from "vitest";
import { endsWithFailedEvent, historyForLetter } from "../src/history.js";

const taskId = "0b6f2c1e-0000-4000-8000-000000000001";
const event = (action: string): AuditEvent => ({ taskId, service: "worker", action, at: new Date().toISOString() });

/** A history that gains `later` after `readsBefore` reads, as the audit service's gathered append would. */
function growingHistory(first: AuditEvent[], later: AuditEvent[], readsBefore: number) {
  let reads = 0;
  return {
    read: async () => (++reads > readsBefore ? [...first, ...later] : first),
    get reads() {
      return reads;
    },
  };
}

describe("endsWithFailedEvent", () => {
  test("letters of ingest and the worker that end a task do; invalid messages, other stages and no task do not", () => {
    expect(endsWithFailedEvent({ reason: "exhausted", subject: "tasks.worker.high", taskId })).toBe(true);
    expect(endsWithFailedEvent({ reason: "rejected", subject: "tasks.ingest", taskId })).toBe(true);
    expect(endsWithFailedEvent({ reason: "invalid", subject: "tasks.worker.high", taskId })).toBe(false);
    expect(endsWithFailedEvent({ reason: "exhausted", subject: "tasks.schedule", taskId })).toBe(false);
    expect(endsWithFailedEvent({ reason: "exhausted", subject: "tasks.worker.low", taskId: undefined })).toBe(false);
  });
});

describe("historyForLetter", () => {
  const letter = { reason: "exhausted" as const, subject: "tasks.worker.medium", taskId };

  test("reads again until the task's failed event has been appended", async () => {
    const history = growingHistory([event("submitted"), event("attempt_failed")], [event("failed")], 3);
    const result = await historyForLetter(letter, history.read, 5_000, 1);
    expect(result.map((e) => e.action)).toEqual(["submitted", "attempt_failed", "failed"]);
    expect(history.reads).toBe(4);
  });

  test("failed_unacknowledged (a crash on the last delivery, from the advisory) ends the wait too", async () => {
    const history = growingHistory([event("submitted")], [event("failed_unacknowledged")], 1);
    const result = await historyForLetter(letter, history.read, 5_000, 1);
    expect(result.at(-1)?.action).toBe("failed_unacknowledged");
  });

  test("after a replay, the earlier failure does not count: it waits for the new one", async () => {
    const before = [event("submitted"), event("failed"), event("replayed"), event("attempt_failed")];
    const history = growingHistory(before, [event("failed")], 2);
    const result = await historyForLetter(letter, history.read, 5_000, 1);
    expect(result.map((e) => e.action)).toEqual([...before.map((e) => e.action), "failed"]);
    expect(history.reads).toBe(3);
  });

  test("gives up after waitMs and keeps what is there", async () => {
    const history = growingHistory([event("submitted")], [event("failed")], Number.POSITIVE_INFINITY);
    const result = await historyForLetter(letter, history.read, 30, 5);
    expect(result.map((e) => e.action)).toEqual(["submitted"]);
    expect(history.reads).toBeGreaterThan(1);
  });

  test("a letter that does not end with a failed event is read once", async () => {
    const history = growingHistory([event("scheduled")], [event("failed")], 5);
    const result = await historyForLetter({ ...letter, subject: "tasks.schedule" }, history.read, 5_000, 1);
    expect(result.map((e) => e.action)).toEqual(["scheduled"]);
    expect(history.reads).toBe(1);
  });
});
