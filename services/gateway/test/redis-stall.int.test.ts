import { Code, ConnectError } from "@connectrpc/connect";
import { useInfra } from "@tm/testkit";
import { Redis } from "ioredis";
import { expect, test } from "vitest";
import { useGateway } from "./helpers.js";

// Its own file: it stalls this file's redis-server.
const infra = useInfra();
const KEY = "alice-key-0123456789abcdef";
const g = useGateway(
  infra,
  { GATEWAY_REDIS_TIMEOUT_MS: "500", GATEWAY_AUTH_MODE: "api-key", GATEWAY_API_KEYS: `alice:${KEY}` },
  { apiKey: KEY },
);

async function failureOf(call: Promise<unknown>): Promise<ConnectError | undefined> {
  return call.then(
    () => undefined,
    (error: unknown) => ConnectError.from(error),
  );
}

/**
 * A Redis that is connected but does not answer (here CLIENT PAUSE; in production a long script, a failover, a hung
 * host) must not hold a caller for as long as it stalls: the rate limit fails open and the call gets UNAVAILABLE
 * after GATEWAY_REDIS_TIMEOUT_MS. Once Redis answers again, so does the gateway.
 */
test("a stalled Redis gets callers UNAVAILABLE after GATEWAY_REDIS_TIMEOUT_MS, not a wait as long as the stall", async () => {
  const { taskId } = await g.client.submitTask({ type: "echo" });

  const pauser = new Redis(infra.redis.url);
  try {
    await pauser.call("CLIENT", "PAUSE", "4000", "ALL");
    const started = Date.now();
    const [submit, get] = await Promise.all([
      failureOf(g.client.submitTask({ type: "echo" }, { timeoutMs: 10_000 })),
      failureOf(g.client.getTask({ taskId }, { timeoutMs: 10_000 })),
    ]);
    const elapsed = Date.now() - started;
    expect(submit?.code).toBe(Code.Unavailable);
    expect(submit?.rawMessage).toContain("no answer within 500 ms");
    expect(get?.code).toBe(Code.Unavailable);
    // Two bounded waits (the rate limit's, then the handler's), far from the 4 s stall.
    expect(elapsed).toBeLessThan(2_500);
    const metrics = await (await fetch(`http://127.0.0.1:${g.gateway.opsPort}/metrics`)).text();
    expect(metrics).toMatch(/tm_rate_limit_bypassed_total(\{[^}]*\})? [1-9]/);

    // The stall ends (the pauser's own PING answers once the pause has run out): the same calls answer.
    await pauser.ping();
    const task = await g.client.getTask({ taskId }, { timeoutMs: 5_000 });
    expect(task.task?.taskId).toBe(taskId);
  } finally {
    pauser.disconnect();
  }
});
