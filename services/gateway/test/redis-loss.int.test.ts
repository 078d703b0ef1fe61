import { Code, ConnectError } from "@connectrpc/connect";
import { TaskState } from "@tm/proto";
import { useInfra } from "@tm/testkit";
import { expect, test } from "vitest";
import { useGateway } from "./helpers.js";

// Its own file: it kills this file's redis-server.
const infra = useInfra();
const g = useGateway(infra);

test("losing Redis ends an open stream with UNAVAILABLE instead of leaving it hanging", async () => {
  const { taskId } = await g.client.submitTask({ type: "echo" });
  const iterator = g.client.streamTaskStatus({ taskId }, { timeoutMs: 15_000 })[Symbol.asyncIterator]();
  expect((await iterator.next()).value?.status?.state).toBe(TaskState.PENDING);
  const combined = g.client.submitTaskAndStreamStatus({ type: "echo" }, { timeoutMs: 15_000 })[Symbol.asyncIterator]();
  expect((await combined.next()).value?.status?.state).toBe(TaskState.PENDING);

  await infra.redis.kill();
  const started = Date.now();
  const [error, combinedError] = await Promise.all(
    [iterator, combined].map((open) =>
      open.next().then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      ),
    ),
  );
  expect(error?.code).toBe(Code.Unavailable);
  expect(combinedError?.code).toBe(Code.Unavailable);
  expect(Date.now() - started).toBeLessThan(5_000);

  // Submitting and streaming in one call is refused before anything is created: it could not stream.
  const lateCombined = await drainError(g.client.submitTaskAndStreamStatus({ type: "echo" }, { timeoutMs: 5_000 }));
  expect(lateCombined?.code).toBe(Code.Unavailable);
  expect(lateCombined?.rawMessage).toContain("not connected to Redis");

  // A stream opened while the subscriber is down is refused at once, not left waiting.
  const late = await drainError(g.client.streamTaskStatus({ taskId }, { timeoutMs: 5_000 }));
  expect(late?.code).toBe(Code.Unavailable);

  // Unary calls that need Redis say so at once rather than waiting out the reconnect budget.
  const submit = await g.client.submitTask({ type: "echo" }, { timeoutMs: 5_000 }).then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  expect(submit?.code).toBe(Code.Unavailable);
  expect(submit?.rawMessage).toContain("Redis unavailable");
});

async function drainError(stream: AsyncIterable<unknown>): Promise<ConnectError | undefined> {
  try {
    for await (const _ of stream) {
      // the current status cannot be read without Redis: nothing should arrive
    }
  } catch (error) {
    return ConnectError.from(error);
  }
  return undefined;
}
