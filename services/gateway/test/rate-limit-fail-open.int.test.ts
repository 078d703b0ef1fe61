import { Code, ConnectError } from "@connectrpc/connect";
import { useInfra, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import { useGateway } from "./helpers.js";

// Its own file: it kills this file's redis-server (the tests run in order: the second stops the gateway).
const infra = useInfra();
const KEY = "alice-key-0123456789abcdef";
const g = useGateway(
  infra,
  {
    GATEWAY_AUTH_MODE: "api-key",
    GATEWAY_API_KEYS: `alice:${KEY}`,
    GATEWAY_RATE_LIMIT_PER_SEC: "1",
    GATEWAY_RATE_LIMIT_BURST: "1",
    // Rounds every 50 ms: once Redis is gone, one is soon held by a command that waits for it.
    GATEWAY_DELAYED_POLL_MS: "50",
  },
  { apiKey: KEY },
);

async function codeOf(call: Promise<unknown>): Promise<Code | 0> {
  return call.then(
    () => 0 as const,
    (error: unknown) => ConnectError.from(error).code,
  );
}

test("with Redis down the rate limit fails open (counted in tm_rate_limit_bypassed_total): the handler answers", async () => {
  const getUnknownTask = () => g.client.getTask({ taskId: crypto.randomUUID() }, { timeoutMs: 5_000 });
  expect(await codeOf(getUnknownTask())).toBe(Code.NotFound);
  expect(await codeOf(getUnknownTask())).toBe(Code.ResourceExhausted);

  await infra.redis.kill();
  await waitFor("the gateway to notice that Redis is gone", () => g.gateway.runtime.redis.status !== "ready", {
    timeoutMs: 10_000,
  });
  // Not RESOURCE_EXHAUSTED and not a hang: the call reaches the handler, which reports Redis as UNAVAILABLE.
  expect(await codeOf(getUnknownTask())).toBe(Code.Unavailable);
  const metrics = await (await fetch(`http://127.0.0.1:${g.gateway.opsPort}/metrics`)).text();
  expect(metrics).toMatch(/tm_rate_limit_bypassed_total(\{[^}]*\})? [1-9]/);
});

test("stopped while Redis is down, the gateway does not wait for rounds the outage holds (they would hold it for minutes)", async () => {
  if (g.gateway.runtime.redis.status === "ready") await infra.redis.kill(); // the first test kills it
  // A round's command waiting for Redis: sent when it died (resent on reconnect) or queued since.
  const client = g.gateway.runtime.redis as unknown as Record<"commandQueue" | "offlineQueue", { length: number }>;
  await waitFor("a round held by the outage", () => client.commandQueue.length + client.offlineQueue.length > 0, {
    timeoutMs: 10_000,
  });
  const stoppingAt = Date.now();
  await g.gateway.stop();
  // Each round is waited for at most 3 s (rounds.ts); before, the stop took 114 s here.
  expect(Date.now() - stoppingAt).toBeLessThan(20_000);
});
