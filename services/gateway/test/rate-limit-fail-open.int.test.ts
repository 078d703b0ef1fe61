import { Code, ConnectError } from "@connectrpc/connect";
import { useInfra, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import { useGateway } from "./helpers.js";

// Its own file: it kills this file's redis-server.
const infra = useInfra();
const KEY = "alice-key-0123456789abcdef";
const g = useGateway(
  infra,
  {
    GATEWAY_AUTH_MODE: "api-key",
    GATEWAY_API_KEYS: `alice:${KEY}`,
    GATEWAY_RATE_LIMIT_PER_SEC: "1",
    GATEWAY_RATE_LIMIT_BURST: "1",
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
