import { describe, expect, test } from "vitest";
import { backoffDelayMs, expiresAtMs, RetryBackoffSchema, TaskMessageSchema } from "../src/index.js";

const exact = () => 0;

describe("backoffDelayMs", () => {
  test("multiplies the first wait for each failed attempt, up to the longest", () => {
    const backoff = { delayMs: 1_000, multiplier: 2, maxDelayMs: 5_000, jitter: 0 };
    expect([1, 2, 3, 4, 5].map((attempt) => backoffDelayMs(backoff, attempt, exact))).toEqual([
      1_000, 2_000, 4_000, 5_000, 5_000,
    ]);
  });

  test("a multiplier of 1 waits the same each time; a huge power is capped, not Infinity or NaN", () => {
    expect(backoffDelayMs({ delayMs: 300, multiplier: 1, maxDelayMs: 3_600_000, jitter: 0 }, 4, exact)).toBe(300);
    expect(backoffDelayMs({ delayMs: 1, multiplier: 100, maxDelayMs: 60_000, jitter: 0 }, 1_000, exact)).toBe(60_000);
    expect(backoffDelayMs({ delayMs: 0, multiplier: 100, maxDelayMs: 60_000, jitter: 0 }, 1_000, exact)).toBe(0);
  });

  test("jitter shortens a wait by up to its fraction, never lengthens it", () => {
    const backoff = { delayMs: 1_000, multiplier: 1, maxDelayMs: 1_000, jitter: 0.5 };
    expect(backoffDelayMs(backoff, 1, () => 0)).toBe(1_000);
    expect(backoffDelayMs(backoff, 1, () => 0.5)).toBe(750);
    expect(backoffDelayMs(backoff, 1, () => 0.999_999)).toBe(500);
  });
});

describe("RetryBackoffSchema", () => {
  test("refuses a longest wait shorter than the first, and values out of range", () => {
    const good = { delayMs: 1_000, multiplier: 2, maxDelayMs: 60_000, jitter: 0.1 };
    expect(RetryBackoffSchema.safeParse(good).success).toBe(true);
    expect(RetryBackoffSchema.safeParse({ ...good, maxDelayMs: 500 }).success).toBe(false);
    expect(RetryBackoffSchema.safeParse({ ...good, multiplier: 0.5 }).success).toBe(false);
    expect(RetryBackoffSchema.safeParse({ ...good, jitter: 1.5 }).success).toBe(false);
    expect(RetryBackoffSchema.safeParse({ ...good, delayMs: 3_600_001, maxDelayMs: 3_600_001 }).success).toBe(false);
  });

  test("a task message carries it, and a malformed one fails the message's validation naming it", () => {
    const message = {
      taskId: "00000000-0000-4000-8000-000000000000",
      type: "echo",
      priority: "medium",
      payload: {},
      createdAt: "2026-12-06T00:00:00.000Z",
    };
    const backoff = { delayMs: 200, multiplier: 3, maxDelayMs: 10_000, jitter: 0 };
    expect(TaskMessageSchema.parse({ ...message, retryBackoff: backoff }).retryBackoff).toEqual(backoff);
    const bad = TaskMessageSchema.safeParse({ ...message, retryBackoff: { ...backoff, multiplier: 0 } });
    expect(bad.error?.issues[0]?.path).toEqual(["retryBackoff", "multiplier"]);
  });
});

describe("expiresAtMs", () => {
  const task = { createdAt: "2026-12-06T00:00:00.000Z", generation: 0, expiresAfterMs: 60_000 };
  test("counts from when the task was due: its submission, or a delayed task's runAt", () => {
    expect(expiresAtMs(task)).toBe(Date.parse("2026-12-06T00:01:00.000Z"));
    expect(expiresAtMs({ ...task, runAt: "2026-12-06T01:00:00.000Z" })).toBe(Date.parse("2026-12-06T01:01:00.000Z"));
  });
  test("never without expires_after, nor for a later generation (a replay or requeue is an explicit decision)", () => {
    expect(expiresAtMs({ ...task, expiresAfterMs: undefined })).toBeUndefined();
    expect(expiresAtMs({ ...task, generation: 1 })).toBeUndefined();
  });
});
