import { once } from "node:events";
import { createServer, type Socket } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { useInfra, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import { useGateway } from "./helpers.js";

// Its own file: it kills this file's redis-server.
const infra = useInfra();
const g = useGateway(infra);

/**
 * A reconnect attempt is not only "reconnecting": it passes through "connecting" and "connect", and stays in
 * "connect" while the port accepts but nothing answers (a Redis hung, or a proxy in front of a dead one). Calls
 * arriving then must still fail fast, not queue through the reconnect budget (CI once caught a SubmitTask in such
 * a window: DEADLINE_EXCEEDED instead of UNAVAILABLE).
 */
test("while the lost Redis connection is being re-established, calls fail fast with UNAVAILABLE", async () => {
  const { taskId } = await g.client.submitTask({ type: "echo" });

  await infra.redis.kill();
  const held: Socket[] = [];
  const silent = createServer((socket) => held.push(socket));
  silent.listen(infra.redis.port, "127.0.0.1");
  await once(silent, "listening");
  try {
    const redis = g.gateway.runtime.redis;
    if (!redis) throw new Error("the gateway has no Redis client");
    await waitFor("the gateway's Redis client connected to the silent port", () => redis.status === "connect");

    const started = Date.now();
    const [submit, get] = await Promise.all([
      g.client.submitTask({ type: "echo" }, { timeoutMs: 5_000 }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      ),
      g.client.getTask({ taskId }, { timeoutMs: 5_000 }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      ),
    ]);
    expect(submit?.code).toBe(Code.Unavailable);
    expect(submit?.rawMessage).toContain("Redis unavailable");
    expect(get?.code).toBe(Code.Unavailable);
    expect(Date.now() - started).toBeLessThan(2_000);
  } finally {
    for (const socket of held) socket.destroy();
    silent.close();
  }
});
