import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { Priority, SubmitTaskRequestSchema } from "@tm/proto";
import { expect, test } from "vitest";
import { parseTaskId, validateSubmission } from "../src/validation.js";
import { rejection } from "./rejection.js";

function request(init: Parameters<typeof create<typeof SubmitTaskRequestSchema>>[1]) {
  return create(SubmitTaskRequestSchema, init);
}

test("defaults: no payload is {}, unspecified priority is medium, empty idempotency key is none", () => {
  expect(validateSubmission(request({ type: "echo" }), 100)).toEqual({
    type: "echo",
    payload: {},
    priority: "medium",
    metadata: {},
    idempotencyKey: undefined,
  });
  expect(validateSubmission(request({ type: "sleep", priority: Priority.HIGH }), 100).priority).toBe("high");
});

test.each([
  ["type", () => validateSubmission(request({ type: "nope" }), 100), 'type: unknown task type "nope"'],
  ["empty type", () => validateSubmission(request({}), 100), "type: is required"],
  ["priority", () => validateSubmission(request({ type: "echo", priority: 9 as Priority }), 100), "priority:"],
  [
    "metadata count",
    () =>
      validateSubmission(
        request({ type: "echo", metadata: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"])) }),
        100,
      ),
    "metadata:",
  ],
  [
    "metadata key",
    () => validateSubmission(request({ type: "echo", metadata: { ["k".repeat(129)]: "v" } }), 100),
    "metadata:",
  ],
  [
    "metadata value",
    () => validateSubmission(request({ type: "echo", metadata: { k: "v".repeat(1025) } }), 100),
    "metadata[k]:",
  ],
  [
    "idempotency key",
    () => validateSubmission(request({ type: "echo", idempotencyKey: "k".repeat(257) }), 100),
    "idempotency_key:",
  ],
  ["task id", () => parseTaskId("123"), "task_id: must be a UUID"],
])("%s is rejected with INVALID_ARGUMENT naming the field", (_name, run, message) => {
  const error = rejection(run);
  expect(error.code).toBe(Code.InvalidArgument);
  expect(error.rawMessage).toContain(message);
});

test("a payload over the size limit is RESOURCE_EXHAUSTED (the contract's code for limits), naming the field", () => {
  const error = rejection(() => validateSubmission(request({ type: "echo", payload: { s: "x".repeat(200) } }), 100));
  expect(error.code).toBe(Code.ResourceExhausted);
  expect(error.rawMessage).toMatch(/^payload: \d+ bytes of JSON exceeds the limit of 100 bytes$/);
});

test("timeout and max_attempts: kept when set (all of the pipeline's attempts too: unset would take the type's), bad values named", () => {
  const limits = (init: Parameters<typeof request>[0]) => {
    const { timeoutMs, maxAttempts } = validateSubmission(request({ type: "echo", ...init }), 100, 5);
    return { timeoutMs, maxAttempts };
  };
  expect(limits({})).toEqual({ timeoutMs: undefined, maxAttempts: undefined });
  expect(limits({ timeout: { seconds: 30n }, maxAttempts: 1 })).toEqual({ timeoutMs: 30_000, maxAttempts: 1 });
  expect(limits({ timeout: { seconds: 0n, nanos: 1 } })).toEqual({ timeoutMs: 1, maxAttempts: undefined });
  expect(limits({ timeout: { seconds: 86_400n }, maxAttempts: 5 })).toEqual({ timeoutMs: 86_400_000, maxAttempts: 5 });

  const message = (init: Parameters<typeof request>[0]) =>
    rejection(() => validateSubmission(request({ type: "echo", ...init }), 100, 5));
  expect(message({ maxAttempts: 6 })).toMatchObject({
    code: Code.InvalidArgument,
    rawMessage:
      "max_attempts: 6 exceeds the pipeline's 5 deliveries per message (FLOW_MAX_DELIVER); use 1 to 5, or 0 for the default (its type's, else all of them)",
  });
  expect(message({ timeout: { seconds: 0n } }).rawMessage).toBe(
    "timeout: must be at least 1 ms (leave it unset for the worker's default)",
  );
  expect(message({ timeout: { seconds: -1n } }).rawMessage).toBe("timeout: must not be negative");
  expect(message({ timeout: { seconds: 86_401n } }).rawMessage).toBe(
    "timeout: 86401 s exceeds the maximum of 86400 s (24 h)",
  );
});

test("retry_backoff: unset fields get their defaults, each bad field is named", () => {
  const backoff = (init: NonNullable<Parameters<typeof request>[0]>["retryBackoff"]) =>
    validateSubmission(request({ type: "echo", retryBackoff: init }), 100, 5).retryBackoff;
  expect(validateSubmission(request({ type: "echo" }), 100, 5)).not.toHaveProperty("retryBackoff");
  expect(backoff({ delay: { seconds: 2n } })).toEqual({
    delayMs: 2_000,
    multiplier: 1,
    maxDelayMs: 3_600_000,
    jitter: 0,
  });
  expect(backoff({ delay: { nanos: 0 }, multiplier: 2.5, maxDelay: { seconds: 60n }, jitter: 0.25 })).toEqual({
    delayMs: 0,
    multiplier: 2.5,
    maxDelayMs: 60_000,
    jitter: 0.25,
  });

  const refused = (init: NonNullable<Parameters<typeof request>[0]>["retryBackoff"]) => {
    const error = rejection(() => validateSubmission(request({ type: "echo", retryBackoff: init }), 100, 5));
    expect(error.code).toBe(Code.InvalidArgument);
    return error.rawMessage;
  };
  expect(refused({})).toBe("retry_backoff.delay: is required (the wait after the first failed attempt; 0 s: at once)");
  expect(refused({ delay: { seconds: -1n } })).toBe("retry_backoff.delay: must not be negative");
  expect(refused({ delay: { seconds: 3_601n } })).toBe(
    "retry_backoff.delay: 3601 s exceeds the maximum of 3600 s (1 h)",
  );
  expect(refused({ delay: { seconds: 1n }, multiplier: 0.5 })).toBe(
    "retry_backoff.multiplier: must be from 1 to 100 (0 or unset: 1), not 0.5",
  );
  expect(refused({ delay: { seconds: 1n }, multiplier: Number.NaN })).toMatch(/^retry_backoff.multiplier: .* not NaN$/);
  expect(refused({ delay: { seconds: 1n }, multiplier: 101 })).toMatch(/^retry_backoff.multiplier: /);
  expect(refused({ delay: { seconds: 10n }, maxDelay: { seconds: 5n } })).toBe(
    "retry_backoff.max_delay: 5000 ms is shorter than delay (10000 ms); leave it unset for 3600 s (1 h)",
  );
  expect(refused({ delay: { seconds: 1n }, maxDelay: { seconds: 7_200n } })).toBe(
    "retry_backoff.max_delay: 7200 s exceeds the maximum of 3600 s (1 h)",
  );
  expect(refused({ delay: { seconds: 1n }, jitter: 1.5 })).toBe(
    "retry_backoff.jitter: must be from 0 to 1 (a fraction of each wait), not 1.5",
  );
  expect(refused({ delay: { seconds: 1n }, jitter: -0.1 })).toMatch(/^retry_backoff.jitter: /);
});

test("expires_after: 1 ms to 7 days, kept when set, bad values named", () => {
  const expiresAfterMs = (seconds: bigint, nanos = 0) =>
    validateSubmission(request({ type: "echo", expiresAfter: { seconds, nanos } }), 100, 5).expiresAfterMs;
  expect(validateSubmission(request({ type: "echo" }), 100, 5)).not.toHaveProperty("expiresAfterMs");
  expect(expiresAfterMs(300n)).toBe(300_000);
  expect(expiresAfterMs(0n, 1)).toBe(1);
  expect(expiresAfterMs(604_800n)).toBe(604_800_000);
  const refused = (seconds: bigint) =>
    rejection(() => validateSubmission(request({ type: "echo", expiresAfter: { seconds } }), 100, 5)).rawMessage;
  expect(refused(0n)).toBe("expires_after: must be at least 1 ms (leave it unset for a task that never expires)");
  expect(refused(-5n)).toBe("expires_after: must not be negative");
  expect(refused(604_801n)).toBe(
    "expires_after: 604801 s exceeds the maximum of 604800 s (7 days, as long as a task is kept)",
  );
});

test("succeeded_retention: 60 s to 90 days in whole seconds (rounded up), kept when set, bad values named", () => {
  const seconds = (value: bigint, nanos = 0) =>
    validateSubmission(request({ type: "echo", succeededRetention: { seconds: value, nanos } }), 100, 5)
      .succeededRetentionSeconds;
  expect(validateSubmission(request({ type: "echo" }), 100, 5)).not.toHaveProperty("succeededRetentionSeconds");
  expect(seconds(60n)).toBe(60);
  expect(seconds(90n, 500_000_000)).toBe(91);
  expect(seconds(7_776_000n)).toBe(7_776_000);
  const refused = (value: bigint) =>
    rejection(() => validateSubmission(request({ type: "echo", succeededRetention: { seconds: value } }), 100, 5))
      .rawMessage;
  expect(refused(59n)).toBe(
    "succeeded_retention: 59 s is under the minimum of 60 s (a client that saw SUCCEEDED must still find the result)",
  );
  expect(refused(-1n)).toBe("succeeded_retention: must not be negative");
  expect(refused(7_776_001n)).toBe("succeeded_retention: 7776001 s exceeds the maximum of 7776000 s (90 days)");
});

test("heartbeat_timeout: 1 ms to 24 h, kept when set, bad values named", () => {
  const ms = (seconds: bigint, nanos = 0) =>
    validateSubmission(request({ type: "echo", heartbeatTimeout: { seconds, nanos } }), 100, 5).heartbeatTimeoutMs;
  expect(validateSubmission(request({ type: "echo" }), 100, 5)).not.toHaveProperty("heartbeatTimeoutMs");
  expect(ms(30n)).toBe(30_000);
  expect(ms(0n, 1)).toBe(1);
  const refused = (seconds: bigint) =>
    rejection(() => validateSubmission(request({ type: "echo", heartbeatTimeout: { seconds } }), 100, 5)).rawMessage;
  expect(refused(0n)).toBe("heartbeat_timeout: must be at least 1 ms (leave it unset for its type's, else none)");
  expect(refused(86_401n)).toBe("heartbeat_timeout: 86401 s exceeds the maximum of 86400 s (24 h)");
});

test("parent_task_id: a task id, kept when set; anything else named", () => {
  const parent = "0b6f4c1e-7d2a-4c55-9a43-2f1b8e6d9c10";
  expect(validateSubmission(request({ type: "echo", parentTaskId: parent }), 100).parentTaskId).toBe(parent);
  expect(validateSubmission(request({ type: "echo" }), 100)).not.toHaveProperty("parentTaskId");
  const refused = rejection(() => validateSubmission(request({ type: "echo", parentTaskId: "task-7" }), 100));
  expect(refused.code).toBe(Code.InvalidArgument);
  expect(refused.rawMessage).toBe('parent_task_id: must be a task id (a UUID), got "task-7"');
});

test("concurrency_key and concurrency_limit: both or neither, the key's characters and length, the limit's range", () => {
  const valid = validateSubmission(request({ type: "echo", concurrencyKey: "acct:42/eu-1", concurrencyLimit: 3 }), 100);
  expect(valid).toMatchObject({ concurrencyKey: "acct:42/eu-1", concurrencyLimit: 3 });
  expect(validateSubmission(request({ type: "echo" }), 100)).not.toHaveProperty("concurrencyKey");
  const refused = (init: Parameters<typeof request>[0]) =>
    rejection(() => validateSubmission(request({ type: "echo", ...init }), 100));
  expect(refused({ concurrencyKey: "a" }).rawMessage).toBe(
    "concurrency_limit: is required with concurrency_key: 1 to 1000",
  );
  expect(refused({ concurrencyLimit: 2 }).rawMessage).toBe("concurrency_key: is required with concurrency_limit (2)");
  expect(refused({ concurrencyKey: "a", concurrencyLimit: 1001 }).rawMessage).toBe(
    "concurrency_limit: 1001 exceeds the maximum of 1000",
  );
  expect(refused({ concurrencyKey: "two words", concurrencyLimit: 1 }).rawMessage).toBe(
    'concurrency_key: must be 1 to 128 letters, digits or _ . : @ / = + - (got "two words")',
  );
  expect(refused({ concurrencyKey: "k".repeat(129), concurrencyLimit: 1 }).rawMessage).toMatch(
    /^concurrency_key: must be 1 to 128 .*…\)$/,
  );
  expect(refused({ concurrencyKey: "k".repeat(129), concurrencyLimit: 1 }).code).toBe(Code.InvalidArgument);
  expect(
    validateSubmission(request({ type: "echo", concurrencyKey: "k".repeat(128), concurrencyLimit: 1000 }), 100),
  ).toMatchObject({ concurrencyLimit: 1000 });
});

test("fairness_key and fairness_weight: a weight needs a key, 0 is 1, the key's form, the weight's range", () => {
  expect(validateSubmission(request({ type: "echo", fairnessKey: "tenant:7" }), 100)).toMatchObject({
    fairnessKey: "tenant:7",
    fairnessWeight: 1,
  });
  expect(validateSubmission(request({ type: "echo", fairnessKey: "t", fairnessWeight: 1000 }), 100)).toMatchObject({
    fairnessWeight: 1000,
  });
  expect(validateSubmission(request({ type: "echo" }), 100)).not.toHaveProperty("fairnessKey");
  const refused = (init: Parameters<typeof request>[0]) =>
    rejection(() => validateSubmission(request({ type: "echo", ...init }), 100));
  expect(refused({ fairnessWeight: 2 }).rawMessage).toBe("fairness_key: is required with fairness_weight (2)");
  expect(refused({ fairnessKey: "a", fairnessWeight: 1001 }).rawMessage).toBe(
    "fairness_weight: 1001 exceeds the maximum of 1000",
  );
  expect(refused({ fairnessKey: "a b" }).rawMessage).toBe(
    'fairness_key: must be 1 to 128 letters, digits or _ . : @ / = + - (got "a b")',
  );
  expect(refused({ fairnessKey: "a b" }).code).toBe(Code.InvalidArgument);
});
