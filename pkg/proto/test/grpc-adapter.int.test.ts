/**
 * Interop between the two gRPC stacks we run, wired only through protobuf-es descriptors:
 * grpc-js servers (via addService) called by connect-node clients, and a connect-node server called by a grpc-js
 * client (via grpcServiceDefinition). No second set of stubs is involved anywhere.
 */
import { EventEmitter } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import {
  addService,
  createHealthClient,
  createTaskClient,
  GetTaskRequestSchema,
  type GetTaskResponse,
  grpcServiceDefinition,
  HealthRegistry,
  Priority,
  retryPushback,
  retryPushbackOf,
  ServingStatus,
  StreamTaskStatusRequestSchema,
  type StreamTaskStatusResponse,
  SubmitTaskRequestSchema,
  type SubmitTaskResponse,
  type Task,
  TaskSchema,
  TaskService,
  TaskState,
} from "../src/index.js";

const DEADLINE_MS = 5_000;

/** Settles like `promise`, or rejects once `ms` pass: a deadline for waiting, never a sleep used to synchronise. */
function within<T>(promise: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

async function startGrpcServer(setup: (server: grpc.Server) => void): Promise<{ server: grpc.Server; url: string }> {
  const server = new grpc.Server();
  setup(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) =>
      error ? reject(error) : resolve(port),
    ),
  );
  return { server, url: `http://127.0.0.1:${port}` };
}

/** connect-node clients keep their HTTP/2 session open, so a graceful tryShutdown would wait for them. */
function stopGrpcServer(server: grpc.Server | undefined) {
  server?.forceShutdown();
}

const LIFECYCLE = [
  TaskState.PENDING,
  TaskState.INGESTED,
  TaskState.SCHEDULED,
  TaskState.RUNNING,
  TaskState.SUCCEEDED,
] as const;

function statusAt(state: TaskState, index: number) {
  return { state, progress: state === TaskState.SUCCEEDED ? 100 : 0, attempt: 1, version: BigInt(index + 1) };
}

const PAYLOAD: JsonObject = {
  image: "s3://bucket/cat.png",
  width: 640,
  ratio: 1.5,
  crop: true,
  tags: ["a", "b", 3, null],
  nested: { empty: {}, list: [], deeper: { flag: false } },
};

describe("connect-node client -> grpc-js server (addService)", () => {
  let server: grpc.Server | undefined;
  let url: string;
  const tasks = new Map<string, Task>();
  const seen: { authorization: string | undefined; peer: string }[] = [];
  let abortedOnServer = deferred<unknown>();

  beforeAll(async () => {
    ({ server, url } = await startGrpcServer((s) =>
      addService(s, TaskService, {
        async submitTask(request, ctx) {
          seen.push({ authorization: ctx.header("authorization"), peer: ctx.peer });
          if (request.type === "unknown") throw new ConnectError("type: unknown", Code.InvalidArgument);
          if (request.type === "quota") {
            const metadata = retryPushback(1234.2);
            // What an error rethrown from another call's response could hold: not for our trailers.
            metadata.set("content-type", "application/json");
            metadata.set("grpc-status", "0");
            throw new ConnectError("rate limit exceeded", Code.ResourceExhausted, metadata);
          }
          if (request.type === "explode") throw new Error("db password hunter2 rejected by 10.0.0.7");
          const taskId = `task-${tasks.size + 1}`;
          tasks.set(
            taskId,
            create(TaskSchema, {
              taskId,
              type: request.type,
              priority: request.priority,
              payload: request.payload,
              metadata: request.metadata,
            }),
          );
          return { taskId };
        },
        async getTask(request) {
          const task = tasks.get(request.taskId);
          if (!task) throw new ConnectError(`task ${request.taskId} not found`, Code.NotFound);
          return { task };
        },
        async *streamTaskStatus(request, ctx) {
          if (request.taskId === "hang") {
            ctx.signal.addEventListener("abort", () => abortedOnServer.resolve(ctx.signal.reason), { once: true });
            yield { taskId: request.taskId, status: statusAt(TaskState.RUNNING, 0) };
            // Stays open until the client goes away.
            if (!ctx.signal.aborted) {
              await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
            }
            return;
          }
          if (request.taskId === "missing") throw new ConnectError("task missing not found", Code.NotFound);
          if (request.taskId === "fail-midway") {
            yield { taskId: request.taskId, status: statusAt(TaskState.PENDING, 0) };
            throw new ConnectError("task vanished", Code.NotFound);
          }
          for (const [index, state] of LIFECYCLE.entries()) {
            yield { taskId: request.taskId, status: statusAt(state, index) };
          }
        },
        async cancelTask() {
          throw new ConnectError("not implemented", Code.Unimplemented);
        },
        // biome-ignore lint/correctness/useYield: a stand-in that only refuses
        async *submitTaskAndStreamStatus() {
          throw new ConnectError("not implemented", Code.Unimplemented);
        },
        async submitTasks() {
          throw new ConnectError("not implemented", Code.Unimplemented);
        },
        async promoteTask() {
          throw new ConnectError("not implemented", Code.Unimplemented);
        },
        async getTaskLogs() {
          throw new ConnectError("not implemented", Code.Unimplemented);
        },
      }),
    ));
  });
  afterAll(() => stopGrpcServer(server));
  afterEach(() => {
    seen.length = 0;
    abortedOnServer = deferred<unknown>();
  });

  test("unary round trip keeps a Struct payload and a map field intact", async () => {
    const client = createTaskClient({ baseUrl: url });
    const submitted = await client.submitTask({
      type: "resize",
      priority: Priority.HIGH,
      payload: PAYLOAD,
      metadata: { tenant: "acme", "trace-id": "abc123", empty: "" },
    });
    expect(submitted.taskId).toMatch(/^task-\d+$/);
    expect(submitted.deduplicated).toBe(false);

    const { task } = await client.getTask({ taskId: submitted.taskId });
    expect(task?.taskId).toBe(submitted.taskId);
    expect(task?.type).toBe("resize");
    expect(task?.priority).toBe(Priority.HIGH);
    expect(task?.payload).toEqual(PAYLOAD);
    expect(task?.metadata).toEqual({ tenant: "acme", "trace-id": "abc123", empty: "" });
  });

  test("server streaming delivers every message, in order", async () => {
    const client = createTaskClient({ baseUrl: url });
    const received: StreamTaskStatusResponse[] = [];
    for await (const message of client.streamTaskStatus({ taskId: "t-1" })) received.push(message);
    expect(received.map((m) => m.taskId)).toEqual(LIFECYCLE.map(() => "t-1"));
    expect(received.map((m) => m.status?.state)).toEqual([...LIFECYCLE]);
    expect(received.map((m) => m.status?.version)).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(received.at(-1)?.status?.progress).toBe(100);
  });

  test("a ConnectError thrown by a handler keeps its code and message", async () => {
    const client = createTaskClient({ baseUrl: url });
    const error = await client.submitTask({ type: "unknown" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage).toBe("type: unknown");
  });

  test("a ConnectError's metadata reaches the client as trailers: a rate limit's retry pushback", async () => {
    const client = createTaskClient({ baseUrl: url });
    const error = await client.submitTask({ type: "quota" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as ConnectError).code).toBe(Code.ResourceExhausted);
    expect(retryPushbackOf(error)).toBe(1235);
    expect((error as ConnectError).metadata.get("grpc-status")).toBe(String(Code.ResourceExhausted));
    // An error without one has no pushback: not a call to retry.
    const invalid = await client.submitTask({ type: "unknown" }).catch((e: unknown) => e);
    expect(retryPushbackOf(invalid)).toBeUndefined();
  });

  test("any other error becomes INTERNAL without leaking its message", async () => {
    const client = createTaskClient({ baseUrl: url });
    const error = await client.submitTask({ type: "explode" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Internal);
    expect((error as ConnectError).rawMessage).toBe("internal error");
    expect((error as ConnectError).message).not.toMatch(/hunter2|10\.0\.0\.7|password/);
  });

  test("an error thrown before the first message ends the stream with its code", async () => {
    const client = createTaskClient({ baseUrl: url });
    const received: StreamTaskStatusResponse[] = [];
    const error = await within(
      (async () => {
        for await (const message of client.streamTaskStatus({ taskId: "missing" })) received.push(message);
      })().then(
        () => undefined,
        (e: unknown) => e,
      ),
      "end of the failing stream",
    );
    expect(received).toEqual([]);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
    expect((error as ConnectError).rawMessage).toBe("task missing not found");
  });

  test("an error thrown mid-stream reaches the client after the messages sent before it", async () => {
    const client = createTaskClient({ baseUrl: url });
    const received: StreamTaskStatusResponse[] = [];
    const error = await within(
      (async () => {
        for await (const message of client.streamTaskStatus({ taskId: "fail-midway" })) received.push(message);
      })().then(
        () => undefined,
        (e: unknown) => e,
      ),
      "end of the failing stream",
    );
    expect(received.map((m) => m.status?.state)).toEqual([TaskState.PENDING]);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
    expect((error as ConnectError).rawMessage).toBe("task vanished");
  });

  test("cancelling a stream on the client aborts the handler's ctx.signal", async () => {
    const client = createTaskClient({ baseUrl: url });
    const controller = new AbortController();
    const received: StreamTaskStatusResponse[] = [];
    const outcome = (async () => {
      for await (const message of client.streamTaskStatus({ taskId: "hang" }, { signal: controller.signal })) {
        received.push(message);
        controller.abort();
      }
    })().then(
      () => undefined,
      (e: unknown) => e,
    );

    const reason = await within(abortedOnServer.promise, "abort of the server handler's ctx.signal");
    expect(reason).toBeInstanceOf(ConnectError);
    expect((reason as ConnectError).code).toBe(Code.Canceled);

    const error = await within(outcome, "end of the cancelled stream on the client");
    expect(received).toHaveLength(1);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Canceled);
  });

  test("the apiKey option arrives as an authorization header", async () => {
    await createTaskClient({ baseUrl: url, apiKey: "s3cret-key" }).submitTask({ type: "echo" });
    await createTaskClient({ baseUrl: url }).submitTask({ type: "echo" });
    expect(seen.map((s) => s.authorization)).toEqual(["Bearer s3cret-key", undefined]);
    expect(seen[0]?.peer).toMatch(/127\.0\.0\.1/);
  });
});

/** What grpc.makeGenericClientConstructor builds from grpcServiceDefinition(TaskService), typed for this test. */
type GenericTaskClient = grpc.Client & {
  submitTask(request: unknown, callback: grpc.requestCallback<SubmitTaskResponse>): grpc.ClientUnaryCall;
  getTask(request: unknown, callback: grpc.requestCallback<GetTaskResponse>): grpc.ClientUnaryCall;
  streamTaskStatus(request: unknown): grpc.ClientReadableStream<StreamTaskStatusResponse>;
};

function unary<T>(start: (callback: grpc.requestCallback<T>) => unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    start((error, value) => (error ? reject(error) : resolve(value as T)));
  });
}

describe("grpc-js client (grpcServiceDefinition) -> connect-node server", () => {
  let server: http2.Http2Server | undefined;
  let client: GenericTaskClient | undefined;
  const sessions = new Set<http2.ServerHttp2Session>();

  beforeAll(async () => {
    server = http2.createServer(
      connectNodeAdapter({
        routes: (router) =>
          router.service(TaskService, {
            async submitTask(request) {
              return {
                taskId: `${request.type}:${request.metadata.tenant}:${Object.keys(request.payload ?? {}).length}`,
                deduplicated: request.idempotencyKey !== "",
              };
            },
            async getTask(request) {
              return {
                task: { taskId: request.taskId, type: "resize", payload: PAYLOAD, metadata: { tenant: "acme" } },
              };
            },
            async *streamTaskStatus(request) {
              for (const [index, state] of LIFECYCLE.entries()) {
                yield { taskId: request.taskId, status: statusAt(state, index) };
              }
            },
          }),
      }),
    );
    server.on("session", (session) => {
      sessions.add(session);
      session.once("close", () => sessions.delete(session));
    });
    const listening = server;
    await new Promise<void>((resolve, reject) => {
      listening.once("error", reject);
      listening.listen(0, "127.0.0.1", () => resolve());
    });
    const { port } = listening.address() as AddressInfo;
    const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(TaskService), "TaskService");
    client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as GenericTaskClient;
  });
  afterAll(async () => {
    client?.close();
    for (const session of sessions) session.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  test("unary calls succeed and decode to protobuf-es messages", async () => {
    const submitted = await unary<SubmitTaskResponse>((callback) =>
      client!.submitTask(
        create(SubmitTaskRequestSchema, {
          type: "resize",
          payload: PAYLOAD,
          metadata: { tenant: "acme" },
          idempotencyKey: "k-1",
        }),
        callback,
      ),
    );
    expect(submitted.$typeName).toBe("taskmanager.v1.SubmitTaskResponse");
    expect(submitted.taskId).toBe(`resize:acme:${Object.keys(PAYLOAD).length}`);
    expect(submitted.deduplicated).toBe(true);

    const got = await unary<GetTaskResponse>((callback) =>
      client!.getTask(create(GetTaskRequestSchema, { taskId: "t-9" }), callback),
    );
    expect(got.$typeName).toBe("taskmanager.v1.GetTaskResponse");
    expect(got.task?.taskId).toBe("t-9");
    expect(got.task?.payload).toEqual(PAYLOAD);
    expect(got.task?.metadata).toEqual({ tenant: "acme" });
  });

  test("server streaming delivers every message, in order", async () => {
    const call = client!.streamTaskStatus(create(StreamTaskStatusRequestSchema, { taskId: "t-2" }));
    const received: StreamTaskStatusResponse[] = [];
    for await (const message of call) received.push(message);
    expect(received.map((m) => m.$typeName)).toEqual(LIFECYCLE.map(() => "taskmanager.v1.StreamTaskStatusResponse"));
    expect(received.map((m) => m.taskId)).toEqual(LIFECYCLE.map(() => "t-2"));
    expect(received.map((m) => m.status?.state)).toEqual([...LIFECYCLE]);
    expect(received.map((m) => m.status?.version)).toEqual([1n, 2n, 3n, 4n, 5n]);
  });
});

describe("HealthRegistry on grpc-js", () => {
  const registry = new HealthRegistry();
  let server: grpc.Server | undefined;
  let url: string;

  beforeAll(async () => {
    registry.set("", ServingStatus.SERVING);
    registry.set("taskmanager.v1.TaskService", ServingStatus.NOT_SERVING);
    ({ server, url } = await startGrpcServer((s) => registry.addTo(s)));
  });
  afterAll(() => stopGrpcServer(server));

  test("check reports the overall status and NotFound for unknown services", async () => {
    const health = createHealthClient({ baseUrl: url });
    expect((await health.check({ service: "" })).status).toBe(ServingStatus.SERVING);
    const error = await health.check({ service: "no.such.Service" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
  });

  test("watch sends the current status, then the new one after set()", async () => {
    const health = createHealthClient({ baseUrl: url });
    const controller = new AbortController();
    const stream = health.watch({ service: "taskmanager.v1.TaskService" }, { signal: controller.signal });
    const iterator = stream[Symbol.asyncIterator]();
    try {
      const first = await within(iterator.next(), "first watch message");
      expect(first.done).toBe(false);
      expect(first.value?.status).toBe(ServingStatus.NOT_SERVING);

      registry.set("taskmanager.v1.TaskService", ServingStatus.SERVING);
      const second = await within(iterator.next(), "watch message after set()");
      expect(second.done).toBe(false);
      expect(second.value?.status).toBe(ServingStatus.SERVING);
    } finally {
      controller.abort();
      await iterator.return?.().catch(() => undefined);
    }
  });

  test("watch does not lose a change made while the previous update waits for the socket to drain", async () => {
    // A fake grpc-js server and call make back-pressure deterministic: write() reports a full buffer until "drain".
    let watch: grpc.handleServerStreamingCall<unknown, { status: ServingStatus }> | undefined;
    const fakeServer = {
      addService: (_definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation) => {
        watch = implementation.watch as typeof watch;
      },
    } as unknown as grpc.Server;
    const local = new HealthRegistry();
    local.set("svc", ServingStatus.NOT_SERVING);
    local.addTo(fakeServer);

    const written: ServingStatus[] = [];
    let wrote = deferred<void>();
    const call = Object.assign(new EventEmitter(), {
      request: { service: "svc" },
      metadata: new grpc.Metadata(),
      getDeadline: () => Number.POSITIVE_INFINITY,
      getPeer: () => "fake",
      write(message: { status: ServingStatus }) {
        written.push(message.status);
        wrote.resolve();
        return false;
      },
      end() {},
      destroy() {},
    });
    watch!(call as unknown as grpc.ServerWritableStream<unknown, { status: ServingStatus }>);

    await within(wrote.promise, "first write");
    expect(written).toEqual([ServingStatus.NOT_SERVING]);

    // The handler is parked on back-pressure; the change must still be delivered once the socket drains.
    wrote = deferred<void>();
    local.set("svc", ServingStatus.SERVING);
    call.emit("drain");
    await within(wrote.promise, "write of the status set during back-pressure");
    expect(written).toEqual([ServingStatus.NOT_SERVING, ServingStatus.SERVING]);

    call.emit("cancelled");
  });
});
