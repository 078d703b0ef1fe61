/**
 * TaskManagerClient.run's timeoutMs bounds the submission too, over real HTTP/2 against grpc-js stand-ins of the
 * gateway: one that never answers SubmitTask, one that keeps answering UNAVAILABLE. Either way run rejects with a
 * SubmitTimeoutError carrying the idempotency key to submit again with, instead of spending every attempt's call
 * timeout (10 s each) and the waits between them.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { startGrpcServer } from "@tm/testkit";
import { afterEach, expect, test } from "vitest";
import { type SubmitTaskRequest, TaskService } from "../src/gen/taskmanager/v1/taskmanager_pb.js";
import { addService } from "../src/grpc-adapter.js";
import { SubmitTimeoutError, TaskManagerClient } from "../src/task-manager-client.js";

const servers: grpc.Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.forceShutdown();
});

/** Serves TaskService with `submitTask` as given (each request recorded); every other method unimplemented. */
async function gateway(submitTask: () => Promise<unknown>): Promise<{ url: string; requests: SubmitTaskRequest[] }> {
  const requests: SubmitTaskRequest[] = [];
  const handlers: Record<string, (request: never) => Promise<unknown>> = Object.fromEntries(
    TaskService.methods.map((method) => [
      method.localName,
      async () => {
        throw new ConnectError(`${method.name} is not served here`, Code.Unimplemented);
      },
    ]),
  );
  handlers.submitTask = async (request: SubmitTaskRequest) => {
    requests.push(request);
    return submitTask();
  };
  const { server, url } = await startGrpcServer((s) => addService(s, TaskService, handlers as never));
  servers.push(server);
  return { url, requests };
}

test("a gateway that never answers: run rejects at its timeoutMs with the key to submit again with", async () => {
  const { url, requests } = await gateway(() => new Promise(() => undefined));
  const tm = new TaskManagerClient({ baseUrl: url });
  const startedAt = Date.now();
  const error = await tm.run({ type: "echo" }, { timeoutMs: 300 }).catch((e: unknown) => e);
  // Without the bound: the first call alone would take its 10 s call timeout.
  expect(Date.now() - startedAt).toBeLessThan(5_000);
  expect(error).toBeInstanceOf(SubmitTimeoutError);
  expect(error).toMatchObject({ timeoutMs: 300, idempotencyKey: requests[0]?.idempotencyKey });
  expect(requests[0]?.idempotencyKey).toMatch(/^client-[0-9a-f-]{36}$/);
  expect((error as Error).message).toBe(
    `the submission was not answered within 300 ms; it may have been recorded: submit again with idempotencyKey "${requests[0]?.idempotencyKey}" to get its task, not a second one`,
  );
});

test("a gateway that keeps answering UNAVAILABLE: retried under one key until timeoutMs, then SubmitTimeoutError", async () => {
  const { url, requests } = await gateway(async () => {
    throw new ConnectError("Redis unavailable while saving", Code.Unavailable);
  });
  const tm = new TaskManagerClient({ baseUrl: url });
  const error = await tm.run({ type: "echo", idempotencyKey: "mine" }, { timeoutMs: 600 }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(SubmitTimeoutError);
  expect(error).toMatchObject({ timeoutMs: 600, idempotencyKey: "mine" });
  // The first call and the retry after 0.25 s, perhaps the one after 0.75 s, but not the two after 1.75 and 3.75 s
  // that the retries would go on to without the bound; every one under the caller's key.
  expect(requests.length).toBeGreaterThanOrEqual(2);
  expect(requests.length).toBeLessThanOrEqual(3);
  expect(new Set(requests.map((request) => request.idempotencyKey))).toEqual(new Set(["mine"]));
});

test("the caller's own signal still ends run with its reason, not a SubmitTimeoutError", async () => {
  const { url } = await gateway(() => new Promise(() => undefined));
  const tm = new TaskManagerClient({ baseUrl: url });
  const controller = new AbortController();
  const running = tm.run({ type: "echo" }, { timeoutMs: 60_000, signal: controller.signal }).catch((e: unknown) => e);
  controller.abort(new Error("the caller gave up"));
  const error = await running;
  expect(error).not.toBeInstanceOf(SubmitTimeoutError);
  expect(String((error as Error).message)).toContain("the caller gave up");
});
