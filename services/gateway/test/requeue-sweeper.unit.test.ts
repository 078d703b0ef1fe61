import type { StoredStatus, TaskRecord } from "@tm/store";
import { describe, expect, test } from "vitest";
import { NOT_QUEUED_PREFIX, requeueWindowMs, sweepAction } from "../src/requeue-sweeper.js";

const NOW = 1_000_000;
const WITHIN = 90_000;
const entry = (ageMs: number) => ({ taskId: "t", createdMs: NOW - ageMs });
const task = (generation = 0): TaskRecord => ({
  taskId: "t",
  type: "echo",
  priority: "medium",
  payload: {},
  metadata: {},
  createdAt: new Date(NOW).toISOString(),
  generation,
});
const status = (state: StoredStatus["state"], generation = 0, error = "") =>
  ({ state, generation, error }) as StoredStatus;

describe("sweepAction", () => {
  test("a PENDING task young enough for the stream to deduplicate it is requeued", () => {
    expect(sweepAction(entry(31_000), task(), status("PENDING"), NOW, WITHIN)).toBe("requeue");
    expect(sweepAction(entry(WITHIN), task(), status("PENDING"), NOW, WITHIN)).toBe("requeue");
  });

  test("a task without a status (interrupted between the two writes) is requeued too", () => {
    expect(sweepAction(entry(31_000), task(), undefined, NOW, WITHIN)).toBe("requeue");
  });

  test("past the window it is failed, not requeued: a second message could no longer be deduplicated", () => {
    expect(sweepAction(entry(WITHIN + 1), task(), status("PENDING"), NOW, WITHIN)).toBe("fail");
    expect(sweepAction(entry(WITHIN + 1), task(), undefined, NOW, WITHIN)).toBe("fail");
  });

  test("a task that moved on or expired is only dropped from the set", () => {
    for (const state of ["INGESTED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"] as const) {
      expect(sweepAction(entry(31_000), task(), status(state), NOW, WITHIN)).toBe("drop");
      expect(sweepAction(entry(WITHIN + 1), task(), status(state), NOW, WITHIN)).toBe("drop");
      expect(sweepAction(entry(31_000), task(2), status(state, 2), NOW, WITHIN)).toBe("drop");
    }
    expect(sweepAction(entry(31_000), undefined, undefined, NOW, WITHIN)).toBe("drop");
  });

  test("its own FAILED of the current generation, left by a round cut short before the cancel marker, is finished", () => {
    const notQueued = status("FAILED", 0, `${NOT_QUEUED_PREFIX} the submission was interrupted ...`);
    expect(sweepAction(entry(WITHIN + 1), task(), notQueued, NOW, WITHIN)).toBe("fail");
    // Another FAILED (a worker's), or the sweeper's FAILED of an older generation, is not the sweeper's to finish.
    expect(sweepAction(entry(WITHIN + 1), task(), status("FAILED", 0, "always fails"), NOW, WITHIN)).toBe("drop");
    expect(sweepAction(entry(31_000), task(1), { ...notQueued, generation: 0 }, NOW, WITHIN)).toBe("requeue");
  });

  test("a replayed generation: PENDING, or still showing the old generation's FAILED, is requeued", () => {
    expect(sweepAction(entry(31_000), task(2), status("PENDING", 2), NOW, WITHIN)).toBe("requeue");
    // The gateway died between the new generation and its PENDING: the status is the dead-lettered one's.
    expect(sweepAction(entry(31_000), task(2), status("FAILED", 1), NOW, WITHIN)).toBe("requeue");
    expect(sweepAction(entry(WITHIN + 1), task(2), status("FAILED", 1), NOW, WITHIN)).toBe("fail");
  });
});

test("the requeue window keeps a quarter of the duplicate window as margin", () => {
  expect(requeueWindowMs(120_000)).toBe(90_000);
});
