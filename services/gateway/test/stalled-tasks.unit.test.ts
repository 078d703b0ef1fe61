import { expect, test } from "vitest";
import type { ConsumerSnapshot } from "../src/queue-stats.js";
import {
  isStalled,
  oldestWaitingBySubject,
  QUEUE_CLOCK_MARGIN_MS,
  STALLABLE_STATES,
  stageSubjectOf,
  stallThresholdMs,
} from "../src/stalled-tasks.js";

const MIN = 60_000;

test("a task's message waits in its stage's queue: ingest, scheduler, its priority's worker queue", () => {
  expect(stageSubjectOf("PENDING", "high")).toBe("tasks.ingest");
  expect(stageSubjectOf("INGESTED", "low")).toBe("tasks.schedule");
  expect(stageSubjectOf("SCHEDULED", "low")).toBe("tasks.worker.low");
  expect(stageSubjectOf("RUNNING", "medium")).toBe("tasks.worker.medium");
  // A type routed to a worker pool waits on the pool's queue of its priority.
  expect(stageSubjectOf("SCHEDULED", "low", "gpu")).toBe("tasks.worker.low.gpu");
  expect(stageSubjectOf("INGESTED", "low", "gpu")).toBe("tasks.schedule");
  for (const state of ["SUCCEEDED", "FAILED", "CANCELLED"] as const)
    expect(stageSubjectOf(state, "high")).toBeUndefined();
  for (const state of STALLABLE_STATES) expect(stageSubjectOf(state, "high")).toBeDefined();
});

test("stalled: unchanged past the threshold, and nothing in its queue as old (the margin covers the hosts' clocks)", () => {
  expect(isStalled(9 * MIN, 10 * MIN, 0)).toBe(false); // not yet
  expect(isStalled(10 * MIN, 10 * MIN, 0)).toBe(true); // the queue is empty: its message is gone
  // A backlog, a pause, a retry's back-off or a running handler: a message as old as the task's change still waits.
  expect(isStalled(30 * MIN, 10 * MIN, 30 * MIN)).toBe(false);
  expect(isStalled(30 * MIN, 10 * MIN, 30 * MIN - QUEUE_CLOCK_MARGIN_MS)).toBe(false);
  // The oldest waiting message is newer than the change by more than the margin: the task's own is not there.
  expect(isStalled(30 * MIN, 10 * MIN, 30 * MIN - QUEUE_CLOCK_MARGIN_MS - 1)).toBe(true);
});

test("the oldest waiting message per subject is the oldest over the consumers that read it, or of a queue none reads", () => {
  const consumer = (subject: string, oldestUnackedAgeMs: number) =>
    ({ subject, oldestUnackedAgeMs }) as ConsumerSnapshot;
  const oldest = oldestWaitingBySubject({
    consumers: [
      consumer("tasks.worker.high", 5_000),
      consumer("tasks.worker.high", 9_000),
      consumer("tasks.ingest", 0),
    ],
    // A pool's queue none of whose workers has started: its oldest message waits for the first.
    unconsumed: [{ stream: "TASKS", subject: "tasks.worker.high.gpu", messages: 2, oldestAgeMs: 7_000 }],
  });
  expect(Object.fromEntries(oldest)).toEqual({
    "tasks.worker.high": 9_000,
    "tasks.ingest": 0,
    "tasks.worker.high.gpu": 7_000,
  });
});

test("a RUNNING task with its own timeout longer than the threshold counts only after that timeout and a minute", () => {
  // Its handler may still be running though its message is gone: it ends, with a status, within its timeout.
  expect(stallThresholdMs("RUNNING", 10 * MIN, 60 * MIN)).toBe(60 * MIN + QUEUE_CLOCK_MARGIN_MS);
  expect(stallThresholdMs("RUNNING", 10 * MIN, 1 * MIN)).toBe(10 * MIN);
  expect(stallThresholdMs("RUNNING", 10 * MIN, undefined)).toBe(10 * MIN);
  // No handler runs in the other states: the task's timeout does not matter there.
  expect(stallThresholdMs("SCHEDULED", 10 * MIN, 60 * MIN)).toBe(10 * MIN);
  expect(stallThresholdMs("PENDING", 10 * MIN, 60 * MIN)).toBe(10 * MIN);
});
