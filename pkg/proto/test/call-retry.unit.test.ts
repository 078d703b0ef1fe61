import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, test } from "vitest";
import {
  isConnectionFailure,
  isRetryableSubmitError,
  MAX_PUSHBACK_WAIT_MS,
  type RetryNotice,
  retryDelayFor,
  retryDelayMs,
  withSubmitRetries,
} from "../src/call-retry.js";
import { retryPushback } from "../src/retry-pushback.js";

const rateLimited = (pushbackMs: number) =>
  new ConnectError("rate limit exceeded for caller cli", Code.ResourceExhausted, retryPushback(pushbackMs));

const unavailable = () => new ConnectError("Redis unavailable while saving the task", Code.Unavailable);

/** A call failing with the given errors in turn, then answering "ok". */
function failing(errors: unknown[]) {
  let calls = 0;
  return {
    call: async () => {
      const error = errors[calls++];
      if (error) throw error;
      return "ok";
    },
    calls: () => calls,
  };
}

/** withSubmitRetries on `target` without notices and without waiting. */
const retryWithoutWaiting = (retries: number, target: ReturnType<typeof failing>) =>
  withSubmitRetries(
    retries,
    target.call,
    () => undefined,
    async () => undefined,
  );

describe("withSubmitRetries", () => {
  test("retries UNAVAILABLE with growing waits, then answers with the attempts made", async () => {
    const notices: RetryNotice[] = [];
    const waits: number[] = [];
    const target = failing([unavailable(), unavailable(), unavailable()]);
    const outcome = await withSubmitRetries(
      4,
      target.call,
      (notice) => notices.push(notice),
      async (ms) => {
        waits.push(ms);
      },
    );
    expect(outcome).toEqual({ value: "ok", attempts: 4 });
    expect(waits).toEqual([250, 500, 1_000]);
    expect(notices.map(({ attempt, attempts }) => [attempt, attempts])).toEqual([
      [2, 5],
      [3, 5],
      [4, 5],
    ]);
  });

  test("waits out a rate limit for as long as the gateway's pushback says, within the same retries", async () => {
    const waits: number[] = [];
    const target = failing([rateLimited(900), unavailable(), rateLimited(40)]);
    const outcome = await withSubmitRetries(
      4,
      target.call,
      () => undefined,
      async (ms) => {
        waits.push(ms);
      },
    );
    expect(outcome).toEqual({ value: "ok", attempts: 4 });
    expect(waits).toEqual([900, 500, 40]);
    await expect(retryWithoutWaiting(1, failing([rateLimited(10), rateLimited(10)]))).rejects.toMatchObject({
      code: Code.ResourceExhausted,
    });
  });

  test("gives up after its retries with the last error", async () => {
    const target = failing([unavailable(), unavailable(), unavailable()]);
    await expect(retryWithoutWaiting(2, target)).rejects.toMatchObject({
      code: Code.Unavailable,
    });
    expect(target.calls()).toBe(3);
  });

  test("does not retry an error that is not UNAVAILABLE, nor at all with 0 retries", async () => {
    for (const code of [Code.InvalidArgument, Code.ResourceExhausted, Code.DeadlineExceeded, Code.Internal]) {
      const target = failing([new ConnectError("no", code)]);
      await expect(retryWithoutWaiting(4, target)).rejects.toMatchObject({
        code,
      });
      expect(target.calls()).toBe(1);
    }
    const target = failing([unavailable()]);
    await expect(retryWithoutWaiting(0, target)).rejects.toThrow();
    expect(target.calls()).toBe(1);
  });
});

test("a refused connection is retryable, a rejected request is not", () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:50051"), { code: "ECONNREFUSED" });
  expect(isRetryableSubmitError(refused)).toBe(true);
  expect(isRetryableSubmitError(new ConnectError("x", Code.Unavailable, undefined, undefined, refused))).toBe(true);
  expect(isRetryableSubmitError(new ConnectError("bad type", Code.InvalidArgument))).toBe(false);
  expect(isRetryableSubmitError(new Error("boom"))).toBe(false);
});

test("RESOURCE_EXHAUSTED is retried only with a pushback, and one no further off than MAX_PUSHBACK_WAIT_MS", () => {
  expect(retryDelayFor(rateLimited(1_234), 3)).toBe(1_234);
  expect(retryDelayFor(rateLimited(MAX_PUSHBACK_WAIT_MS + 1), 1)).toBeUndefined();
  expect(retryDelayFor(new ConnectError("batch too large", Code.ResourceExhausted), 1)).toBeUndefined();
  // A pushback on another code is not a rate limit.
  expect(retryDelayFor(new ConnectError("bad", Code.InvalidArgument, retryPushback(10)), 1)).toBeUndefined();
  const malformed = new ConnectError("x", Code.ResourceExhausted, { "grpc-retry-pushback-ms": "soon" });
  expect(retryDelayFor(malformed, 1)).toBeUndefined();
});

test("waits: 0.25, 0.5, 1, 2, 4 s, then 4 s again", () => {
  expect([1, 2, 3, 4, 5, 6, 9].map(retryDelayMs)).toEqual([250, 500, 1_000, 2_000, 4_000, 4_000, 4_000]);
});

test("isConnectionFailure follows causes", () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:50051"), { code: "ECONNREFUSED" });
  expect(isConnectionFailure(new Error("outer", { cause: refused }))).toBe(true);
  expect(isConnectionFailure(new ConnectError("x", Code.Unavailable, undefined, undefined, refused))).toBe(true);
  expect(isConnectionFailure(new Error("nope"))).toBe(false);
});
