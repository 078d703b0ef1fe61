import { describe, expect, test } from "vitest";
import {
  ATTEMPT_FAILED_STEP,
  canTransition,
  generationOf,
  isLaterStatus,
  isTerminal,
  publishStatus,
  shouldApply,
  statusEvent,
  statusVersion,
  TASK_STATES,
  type TaskState,
} from "../src/index.js";

describe("lifecycle transitions", () => {
  test("forward moves are legal, backward moves are not", () => {
    expect(canTransition("PENDING", "INGESTED")).toBe(true);
    expect(canTransition("PENDING", "SCHEDULED")).toBe(true); // a lost INGESTED event must not block the task
    expect(canTransition("SCHEDULED", "RUNNING")).toBe(true);
    expect(canTransition("RUNNING", "RUNNING")).toBe(true);
    expect(canTransition("RUNNING", "SUCCEEDED")).toBe(true);
    expect(canTransition("SCHEDULED", "INGESTED")).toBe(false);
    expect(canTransition("RUNNING", "PENDING")).toBe(false);
  });

  test("nothing leaves a terminal state; CANCELLED is reachable from every other state", () => {
    for (const from of ["SUCCEEDED", "FAILED", "CANCELLED"] as TaskState[]) {
      expect(isTerminal(from)).toBe(true);
      for (const to of TASK_STATES) expect(canTransition(from, to)).toBe(false);
    }
    for (const from of ["PENDING", "INGESTED", "SCHEDULED", "RUNNING"] as TaskState[]) {
      expect(canTransition(from, "CANCELLED")).toBe(true);
    }
  });
});

describe("status versions", () => {
  test("strictly increase along a task's life, including retries and progress", () => {
    const sequence = [
      statusVersion({ state: "PENDING" }),
      statusVersion({ state: "INGESTED" }),
      statusVersion({ state: "SCHEDULED" }),
      statusVersion({ state: "RUNNING", attempt: 1, step: 0 }),
      statusVersion({ state: "RUNNING", attempt: 1, step: 50 }),
      statusVersion({ state: "RUNNING", attempt: 1, step: ATTEMPT_FAILED_STEP }),
      statusVersion({ state: "RUNNING", attempt: 2, step: 0 }),
      statusVersion({ state: "RUNNING", attempt: 2, step: 100 }),
      statusVersion({ state: "SUCCEEDED", attempt: 2 }),
    ];
    for (let i = 1; i < sequence.length; i++) expect(sequence[i]).toBeGreaterThan(sequence[i - 1] as number);
  });

  test("a replay's generation outranks everything of the previous generation", () => {
    const failed = statusVersion({ state: "FAILED", attempt: 5 });
    const replayed = statusVersion({ state: "PENDING", generation: 1 });
    expect(replayed).toBeGreaterThan(failed);
    expect(generationOf(replayed)).toBe(1);
    expect(generationOf(failed)).toBe(0);
    expect(shouldApply({ state: "FAILED", version: failed }, { state: "PENDING", version: replayed })).toBe(true);
  });

  test("shouldApply ignores older, duplicate and post-terminal updates", () => {
    const running = { state: "RUNNING" as const, version: statusVersion({ state: "RUNNING", attempt: 1, step: 40 }) };
    const older = { state: "RUNNING" as const, version: statusVersion({ state: "RUNNING", attempt: 1, step: 20 }) };
    const done = { state: "SUCCEEDED" as const, version: statusVersion({ state: "SUCCEEDED" }) };
    const cancelled = { state: "CANCELLED" as const, version: statusVersion({ state: "CANCELLED" }) };
    expect(shouldApply(undefined, running)).toBe(true);
    expect(shouldApply(running, older)).toBe(false);
    expect(shouldApply(running, running)).toBe(false);
    expect(shouldApply(running, done)).toBe(true);
    expect(shouldApply(done, cancelled)).toBe(false); // higher version, but SUCCEEDED is final
  });

  test("a progress report at an unchanged percent comes after the reports before it, not after a newer version", () => {
    const at40 = statusVersion({ state: "RUNNING", attempt: 1, step: 40 });
    const first = { state: "RUNNING" as const, version: at40, progressReport: 1 };
    const second = { state: "RUNNING" as const, version: at40, progressReport: 2 };
    const at50 = { state: "RUNNING" as const, version: statusVersion({ state: "RUNNING", attempt: 1, step: 50 }) };
    expect(isLaterStatus(first, second)).toBe(true);
    expect(isLaterStatus(second, first)).toBe(false);
    expect(isLaterStatus(second, second)).toBe(false);
    expect(isLaterStatus({ version: at40 }, first)).toBe(true); // the attempt's start had no report
    expect(isLaterStatus(second, at50)).toBe(true);
    expect(isLaterStatus(at50, { ...second, progressReport: 9 })).toBe(false);
    expect(shouldApply(first, second)).toBe(true);
    expect(shouldApply(second, first)).toBe(false);
  });

  test("statusEvent carries a progress report's number, message and details; publishStatus ids differ per report", async () => {
    const taskId = crypto.randomUUID();
    const event = statusEvent({
      taskId,
      state: "RUNNING",
      source: "worker",
      attempt: 1,
      progress: 30,
      report: { number: 3, message: "step 3", details: { rows: 10 } },
    });
    expect(event).toMatchObject({ progressReport: 3, progressMessage: "step 3", progressDetails: { rows: 10 } });
    expect(statusEvent({ taskId, state: "RUNNING", source: "worker", report: { number: 1 } })).not.toHaveProperty(
      "progressMessage",
    );
    const ids: string[] = [];
    const publisher = { publish: async (_s: string, _b: unknown, o: { msgId: string }) => void ids.push(o.msgId) };
    // Two reports at one percent, and the update without one: the same version, three message ids.
    for (const report of [{ number: 3 }, { number: 4 }, undefined]) {
      await publishStatus(publisher as never, { taskId, state: "RUNNING", source: "w", progress: 30, report });
    }
    expect(new Set(ids).size).toBe(3);
  });

  test("statusEvent fills progress 100 on success and keeps the error", () => {
    const event = statusEvent({ taskId: crypto.randomUUID(), state: "SUCCEEDED", source: "worker", attempt: 2 });
    expect(event.progress).toBe(100);
    const failed = statusEvent({ taskId: crypto.randomUUID(), state: "FAILED", source: "worker", error: "boom" });
    expect(failed.error).toBe("boom");
  });
});
