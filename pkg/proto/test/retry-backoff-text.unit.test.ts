import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { expect, test } from "vitest";
import { RetryBackoffSchema, retryBackoffText } from "../src/index.js";

const ms = (n: number) => `${n} ms`;

test("a retry backoff in words: the first wait, the growth and its cap (unless the longest), the jitter", () => {
  const backoff = (init: { delay: number; multiplier?: number; maxDelay?: number; jitter?: number }) =>
    create(RetryBackoffSchema, {
      delay: durationFromMs(init.delay),
      multiplier: init.multiplier ?? 0,
      ...(init.maxDelay === undefined ? {} : { maxDelay: durationFromMs(init.maxDelay) }),
      jitter: init.jitter ?? 0,
    });
  expect(retryBackoffText(backoff({ delay: 500, multiplier: 1, maxDelay: 3_600_000 }), ms)).toBe("after 500 ms");
  expect(retryBackoffText(backoff({ delay: 0 }), ms)).toBe("after 0 ms");
  expect(retryBackoffText(backoff({ delay: 100, multiplier: 2, maxDelay: 3_600_000 }), ms)).toBe(
    "after 100 ms, ×2 each time",
  );
  expect(retryBackoffText(backoff({ delay: 100, multiplier: 2.5, maxDelay: 5_000, jitter: 0.25 }), ms)).toBe(
    "after 100 ms, ×2.5 each time up to 5000 ms, up to 25 % less at random",
  );
});
