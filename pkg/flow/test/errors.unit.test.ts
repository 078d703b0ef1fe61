import { describe, expect, test } from "vitest";
import {
  AuditEventSchema,
  MAX_RETRY_AFTER_MS,
  RateLimitedError,
  RECORDED_ERROR_CHARS,
  RetryAfterError,
  recordedError,
} from "../src/index.js";

describe("RetryAfterError", () => {
  test("refuses a delay that is not a number ≥ 0, naming it", () => {
    expect(() => new RetryAfterError("busy", -1)).toThrow(/retryAfterMs must be a finite number ≥ 0, not -1/);
    expect(() => new RetryAfterError("busy", Number.NaN)).toThrow(/not NaN/);
    expect(() => new RetryAfterError("busy", Number.POSITIVE_INFINITY)).toThrow(/not Infinity/);
  });

  test("rounds to whole milliseconds and caps a delay over an hour", () => {
    expect(new RetryAfterError("busy", 1.6).retryAfterMs).toBe(2);
    expect(new RetryAfterError("busy", 10 * MAX_RETRY_AFTER_MS).retryAfterMs).toBe(MAX_RETRY_AFTER_MS);
  });

  test("keeps its message and cause, and names itself", () => {
    const cause = new Error("HTTP 429");
    const error = new RetryAfterError("rate limited downstream", 500, { cause });
    expect(error).toMatchObject({ name: "RetryAfterError", message: "rate limited downstream", cause });
    expect(error).toBeInstanceOf(Error);
  });
});

describe("RateLimitedError", () => {
  test("is a RetryAfterError (what a consumer that cannot defer it does with it), with its own name and checks", () => {
    const error = new RateLimitedError("429 from the mail API", 2_000);
    expect(error).toBeInstanceOf(RetryAfterError);
    expect(error).toMatchObject({ name: "RateLimitedError", retryAfterMs: 2_000, message: "429 from the mail API" });
    expect(new RateLimitedError("busy", 10 * MAX_RETRY_AFTER_MS).retryAfterMs).toBe(MAX_RETRY_AFTER_MS);
    expect(() => new RateLimitedError("busy", -5)).toThrow(
      /RateLimitedError: retryAfterMs must be a finite number ≥ 0, not -5/,
    );
  });
});

describe("recordedError", () => {
  test("cuts a long message so that an audit event holding it stays within its limit, even fully escaped", () => {
    const error = new Error("\u0001".repeat(50_000));
    expect(recordedError(error)).toHaveLength(RECORDED_ERROR_CHARS);
    const detail = { attempt: 1, error: recordedError(error), worker: "host:1" };
    expect(
      AuditEventSchema.safeParse({ service: "worker", action: "failed", at: new Date().toISOString(), detail }).success,
    ).toBe(true);
    expect(recordedError("short")).toBe("short");
  });
});
