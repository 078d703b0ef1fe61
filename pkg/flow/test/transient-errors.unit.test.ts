import { NatsError } from "nats";
import { expect, test } from "vitest";
import { isTransientNatsError, JetStreamPublishError } from "../src/index.js";

test("only a NATS client's timeout, no-responders or disconnect is transient; a handler's own timeout is its failure", () => {
  expect(isTransientNatsError(new NatsError("TIMEOUT", "TIMEOUT"))).toBe(true);
  expect(isTransientNatsError(new NatsError("503", "503"))).toBe(true);
  expect(isTransientNatsError(new NatsError("disconnect", "DISCONNECT"))).toBe(true);
  expect(isTransientNatsError(new JetStreamPublishError("no answer", "TIMEOUT"))).toBe(true);
  expect(isTransientNatsError(new NatsError("permissions violation", "PERMISSIONS_VIOLATION"))).toBe(false);
  // What a handler throws for its own reasons: an attempt failed, retried as one (not held as a NATS outage).
  expect(isTransientNatsError(new Error("upstream Request timeout"))).toBe(false);
  expect(isTransientNatsError(new DOMException("The operation was aborted due to timeout", "TimeoutError"))).toBe(
    false,
  );
  expect(
    isTransientNatsError(
      Object.assign(new Error("no progress reported for 150 ms (its heartbeat timeout)"), { code: "TIMEOUT" }),
    ),
  ).toBe(false);
});
