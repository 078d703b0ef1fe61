import { describe, expect, test } from "vitest";
import { isTransientJetStreamError, retryWhileJetStreamStarts } from "../src/jetstream-startup.js";

const warnings: unknown[] = [];
const log = { warn: (...args: unknown[]) => void warnings.push(args) };
const timeout = () => Object.assign(new Error("TIMEOUT"), { code: "TIMEOUT" });
/** A JetStream API error as nats.js reports it: code is the API's HTTP-like status, api_error its details. */
const apiError = (status: number, errCode: number, description: string) =>
  Object.assign(new Error(description), {
    code: String(status),
    api_error: { code: status, err_code: errCode, description },
  });

/** A call that fails with each of `errors` in turn, then answers "done"; counts its calls. */
function failing(...errors: Error[]) {
  const call = async () => {
    call.calls++;
    const error = errors.shift();
    if (error) throw error;
    return "done";
  };
  call.calls = 0;
  return call;
}

describe("isTransientJetStreamError", () => {
  test.each([
    ["a request timeout", timeout(), true],
    ["no responders", Object.assign(new Error("503"), { code: "503" }), true],
    [
      "JetStream temporarily unavailable (10008)",
      apiError(503, 10008, "JetStream system temporarily unavailable"),
      true,
    ],
    ["no suitable peers yet (10005)", apiError(400, 10005, "no suitable peers for placement"), true],
    ["a stream a lagging server does not know yet (10059)", apiError(404, 10059, "stream not found"), true],
    ["permission denied", Object.assign(new Error("Permissions Violation"), { code: "PERMISSIONS_VIOLATION" }), false],
    ["a stream name in use with another config (10058)", apiError(400, 10058, "stream name already in use"), false],
    [
      "JetStream not enabled for the account (503, 10039)",
      apiError(503, 10039, "jetstream not enabled for account"),
      false,
    ],
    ["a plain error", new Error("boom"), false],
    ["not an error", undefined, false],
  ])("%s → %s", (_, error, transient) => {
    expect(isTransientJetStreamError(error)).toBe(transient);
  });
});

describe("retryWhileJetStreamStarts", () => {
  test("retries transient failures and returns the answer", async () => {
    const call = failing(timeout(), apiError(503, 10008, "temporarily unavailable"), timeout());
    await expect(retryWhileJetStreamStarts("provisioning", call, { log, pauseMs: 1 })).resolves.toBe("done");
    expect(call.calls).toBe(4);
  });

  test("a failure that is not transient fails at once, unchanged", async () => {
    const denied = Object.assign(new Error("Permissions Violation"), { code: "PERMISSIONS_VIOLATION" });
    const call = failing(denied);
    await expect(retryWhileJetStreamStarts("provisioning", call, { log, pauseMs: 1 })).rejects.toBe(denied);
    expect(call.calls).toBe(1);
  });

  test("gives up at the deadline, naming the step and the last error", async () => {
    const call = failing(...Array.from({ length: 1000 }, timeout));
    const failure = retryWhileJetStreamStarts("provisioning the streams", call, { log, pauseMs: 5, deadlineMs: 40 });
    await expect(failure).rejects.toThrow(
      /provisioning the streams: JetStream still not ready after \d+ attempts \(TIMEOUT\)/,
    );
    expect(call.calls).toBeGreaterThan(1);
    expect(call.calls).toBeLessThan(20);
  });
});
