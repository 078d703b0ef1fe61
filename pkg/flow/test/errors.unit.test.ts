import { describe, expect, test } from "vitest";
import { MAX_RETRY_AFTER_MS, RetryAfterError } from "../src/index.js";

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
