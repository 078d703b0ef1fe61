/**
 * Property-based fuzzing of the public boundaries with fast-check, against real processes (gateway, enricher,
 * result-store on a real nats-server and redis-server):
 *  - gRPC: random SubmitTask requests (any type string, Struct payloads with deep nesting and huge strings, any
 *    priority number, random metadata and idempotency keys) and random ids to GetTask/CancelTask/StreamTaskStatus.
 *    Every answer is OK or a client-error code, never UNKNOWN/INTERNAL, and health still answers afterwards.
 *  - HTTP: random bodies, content types and paths to the enricher, random ids to GET /results/:id. Never a 5xx;
 *    every 4xx is JSON naming the problem.
 * FUZZ_RUNS scales the number of cases (default 1000 per property: 2000 gRPC and 2000 HTTP cases in all).
 * The properties are independent (each keeps its own list of failures) and run concurrently: a case waits on a
 * server most of its time, and each property keeps one server busy.
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createHealthClient, createTaskClient, type TaskClient } from "@tm/proto";
import {
  type NatsServer,
  type RedisServer,
  type SpawnedService,
  spawnService,
  startNats,
  startRedis,
} from "@tm/testkit";
import fc from "fast-check";
import { afterAll, beforeAll, describe, test } from "vitest";

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);
const ALLOWED = new Set([Code.InvalidArgument, Code.NotFound, Code.FailedPrecondition, Code.ResourceExhausted]);

let nats: NatsServer;
let redis: RedisServer;
const services: SpawnedService[] = [];
let client: TaskClient;
let gatewayUrl: string;
let enricherUrl: string;
let resultStoreUrl: string;

beforeAll(async () => {
  [nats, redis] = await Promise.all([startNats(), startRedis()]);
  const env = { NATS_URL: nats.url, REDIS_URL: redis.url };
  const [gateway, enricher, resultStore] = await Promise.all(
    ["gateway", "enricher", "result-store"].map((name) => spawnService(name, env)),
  );
  services.push(gateway!, enricher!, resultStore!);
  gatewayUrl = `http://127.0.0.1:${gateway!.port}`;
  enricherUrl = `http://127.0.0.1:${enricher!.port}`;
  resultStoreUrl = `http://127.0.0.1:${resultStore!.port}`;
  client = createTaskClient({ baseUrl: gatewayUrl });
}, 90_000);
afterAll(async () => {
  await Promise.all(services.map((s) => s.process.kill()));
  await Promise.all([nats?.dispose(), redis?.dispose()]);
});

const anyString = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.constantFrom("", " ", "\u0000", "../../etc/passwd", "%00", "🙂".repeat(40)),
);
const hugeString = fc.integer({ min: 10_000, max: 300_000 }).map((n) => "y".repeat(n));
/** A JSON object nested `depth` levels deep. */
const deepObject = fc.integer({ min: 1, max: 200 }).map((depth) => {
  let value: JsonObject = { leaf: true };
  for (let i = 0; i < depth; i++) value = { [`l${i}`]: value };
  return value;
});
const payload: fc.Arbitrary<JsonObject> = fc.oneof(
  { weight: 5, arbitrary: fc.dictionary(anyString, fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<JsonValue>) },
  { weight: 1, arbitrary: deepObject },
  { weight: 1, arbitrary: hugeString.map((big) => ({ big })) },
  { weight: 1, arbitrary: fc.record({ ms: fc.integer({ min: -10, max: 50 }) }) },
  { weight: 1, arbitrary: fc.record({ data: anyString, rounds: fc.integer({ min: -5, max: 5 }) }) },
);
const submission = fc.record({
  type: fc.oneof(fc.constantFrom("echo", "sleep", "checksum", "flaky", "fail"), anyString),
  payload,
  priority: fc.integer({ min: -3, max: 10 }),
  idempotencyKey: fc.oneof(fc.constant(""), anyString, fc.string({ minLength: 250, maxLength: 300 })),
  metadata: fc.dictionary(anyString, fc.oneof(anyString, fc.string({ minLength: 1000, maxLength: 1100 })), {
    maxKeys: 40,
  }),
});
const taskId = fc.oneof(fc.uuid(), anyString, fc.constant(""));

/** The gRPC code of an outcome: OK, or the code it failed with. */
async function codeOf(call: () => Promise<unknown>): Promise<Code | "OK"> {
  try {
    await call();
    return "OK";
  } catch (error) {
    return ConnectError.from(error).code;
  }
}

/** Each property collects readable (truncated) descriptions of the cases that broke it in its own `failures`;
 *  fast-check's own report would print 300 KB counterexamples in full. */
const short = (value: unknown) => JSON.stringify(value).slice(0, 300);

function checkClientCode(failures: string[], code: Code | "OK", what: unknown): boolean {
  if (code === "OK" || ALLOWED.has(code)) return true;
  failures.push(`answered ${Code[code]} to ${short(what)}`);
  return false;
}

describe.concurrent("fuzzing the gRPC API", () => {
  test("SubmitTask answers OK or a client error to any request", async ({ expect }) => {
    const failures: string[] = [];
    await fc.assert(
      fc.asyncProperty(submission, async (request) => {
        checkClientCode(failures, await codeOf(() => client.submitTask(request)), request);
      }),
      { numRuns: RUNS },
    );
    expect(failures).toEqual([]);
  });

  test("a payload nested deeper than the protobuf decoder allows is INVALID_ARGUMENT, not INTERNAL", async ({
    expect,
  }) => {
    // Regression: grpc-js answered the decoder's recursion-limit error with INTERNAL (fixed in pkg/proto).
    let payload: JsonObject = { leaf: true };
    for (let i = 0; i < 120; i++) payload = { nested: payload };
    const error = await client.submitTask({ type: "echo", payload }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.rawMessage).toMatch(/recursion depth/);
  });

  test("GetTask, CancelTask, PromoteTask, GetTaskLogs and StreamTaskStatus answer OK or a client error to any id and cursor", async ({
    expect,
  }) => {
    const failures: string[] = [];
    const calls = {
      get: (id: string) => client.getTask({ taskId: id }),
      cancel: (id: string) => client.cancelTask({ taskId: id, reason: "fuzz" }),
      promote: (id: string) => client.promoteTask({ taskId: id }),
      // Here the random text is the cursor (checked before the task is looked up), the limit from its length.
      logs: (text: string) => client.getTaskLogs({ taskId: crypto.randomUUID(), after: text, limit: text.length * 40 }),
      // Only random ids reach here, so a stream never opens on a live task; its first answer is the outcome.
      stream: async (id: string) => {
        for await (const _ of client.streamTaskStatus({ taskId: id }, { signal: AbortSignal.timeout(5_000) })) break;
      },
    };
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("get", "cancel", "promote", "logs", "stream" as const),
        taskId,
        async (rpc, id) => {
          checkClientCode(failures, await codeOf(() => calls[rpc](id)), { rpc, id });
        },
      ),
      { numRuns: RUNS },
    );
    expect(failures).toEqual([]);
    const health = await createHealthClient({ baseUrl: gatewayUrl }).check({ service: "" });
    expect(health.status).toBe(1); // SERVING
  });
});

const contentType = fc.oneof(
  fc.constantFrom(
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
  ),
  fc.string({ maxLength: 40 }),
);
const body = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v)),
  fc
    .record({
      taskId: fc.oneof(fc.uuid(), anyString),
      type: anyString,
      priority: fc.oneof(fc.constantFrom("high", "medium", "low"), anyString),
      payload: fc.oneof(payload, fc.jsonValue({ maxDepth: 2 })),
      createdAt: fc.oneof(
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        anyString,
      ),
    })
    .map((v) => JSON.stringify(v)),
);
const path = fc.oneof(
  { weight: 4, arbitrary: fc.constant("/enrich") },
  { weight: 1, arbitrary: fc.webPath() },
  { weight: 1, arbitrary: fc.constantFrom("/enrich/", "/enrich?x=1", "//enrich", "/ENRICH") },
);

async function checkClientAnswer(failures: string[], response: Response, what: unknown): Promise<void> {
  const text = await response.text();
  const where = `${response.status} ${text.slice(0, 200)} to ${short(what)}`;
  if (response.status >= 500) failures.push(`server error: ${where}`);
  else if (response.status >= 400) {
    let parsed: { error?: unknown; message?: unknown } | undefined;
    try {
      parsed = JSON.parse(text);
    } catch {
      failures.push(`4xx without a JSON body: ${where}`);
      return;
    }
    if (typeof parsed?.error !== "string" && typeof parsed?.message !== "string")
      failures.push(`4xx without an error message: ${where}`);
  }
}

describe.concurrent("fuzzing the HTTP APIs", () => {
  test("the enricher never answers 5xx, and names the problem in JSON on 4xx", async ({ expect }) => {
    const failures: string[] = [];
    await fc.assert(
      fc.asyncProperty(fc.record({ path, contentType, body }), async (request) => {
        const response = await fetch(`${enricherUrl}${request.path}`, {
          method: "POST",
          headers: request.contentType ? { "content-type": request.contentType } : {},
          body: request.body,
        });
        await checkClientAnswer(failures, response, request);
      }),
      { numRuns: RUNS },
    );
    expect(failures).toEqual([]);
  });

  test("the result-store never answers 5xx to GET /results/:id, and names the problem in JSON on 4xx", async ({
    expect,
  }) => {
    const failures: string[] = [];
    await fc.assert(
      fc.asyncProperty(taskId, async (id) => {
        const response = await fetch(`${resultStoreUrl}/results/${encodeURIComponent(id)}`);
        await checkClientAnswer(failures, response, id);
      }),
      { numRuns: RUNS },
    );
    expect(failures).toEqual([]);
    expect((await fetch(`${resultStoreUrl}/readyz`)).status).toBe(200);
  });
});
