/**
 * Runs taskctl against a real gRPC server (grpc-js via @tm/proto's addService) that implements TaskService with a
 * small scripted lifecycle per task type. Until the gateway lands this is the closest honest end-to-end check of
 * the client: real HTTP/2, real protobuf, real status streams.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import {
  addService,
  createTaskClient,
  HealthRegistry,
  Priority,
  retryPushback,
  ServingStatus,
  type SubmitTaskAndStreamStatusRequest,
  type SubmitTaskRequest,
  TaskService,
  TaskState,
  type TaskStatusSchema,
} from "@tm/proto";
import { createTlsFiles, freePort, type TlsFiles, waitFor } from "@tm/testkit";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ExitCode, type Io, run } from "../src/run.js";
import { submitAndStream } from "../src/submit-stream.js";

type StatusInit = MessageInitShape<typeof TaskStatusSchema>;
interface StoredTask {
  type: string;
  priority: Priority;
  payload: JsonObject | undefined;
  metadata: Record<string, string>;
}

/** The statuses a task of each type goes through, in order. */
function lifecycleOf(type: string): StatusInit[] {
  const step = (state: TaskState, progress = 0, attempt = 0, error = ""): StatusInit => ({
    state,
    progress,
    attempt,
    error,
  });
  const start = [step(TaskState.PENDING), step(TaskState.INGESTED), step(TaskState.SCHEDULED)];
  if (type === "fail") return [...start, step(TaskState.RUNNING, 0, 1), step(TaskState.FAILED, 0, 1, "always fails")];
  return [
    ...start,
    step(TaskState.RUNNING, 0, 1),
    step(TaskState.RUNNING, 50, 1),
    step(TaskState.RUNNING, 100, 1),
    step(TaskState.SUCCEEDED, 100, 1),
  ];
}

const tasks = new Map<string, StoredTask>();
/** Tasks of type "hiccup" whose first status stream already broke off with UNAVAILABLE. */
const hiccupped = new Set<string>();
const requests: { submit: unknown[]; submitAndStream: number; batches: number[] } = {
  submit: [],
  submitAndStream: 0,
  batches: [],
};
/** Batches with a "throttled" task refused so far (the first one is). */
let throttledOnce = 0;
/** Calls of type "silent" that the client ended (the stand-in saw the call aborted). */
let silentCallsEnded = 0;
let server: grpc.Server;
let addr: string;
/** The same stand-in over TLS with a throwaway CA, asking for a client certificate. */
let tlsAddr: string;
let tls: TlsFiles;

/** Demo calls still to answer UNAVAILABLE once their task is recorded (as a gateway whose publish failed). */
let unavailableDemoCalls = 0;

/** Task ids by idempotency key, and how many calls each key has made (type "unsteady"). */
const byKey = new Map<string, string>();
const callsByKey = new Map<string, number>();

/**
 * The stand-in gateway's SubmitTask: records the task and returns its id; a repeated idempotency key returns the
 * first task. An "unsteady" task is recorded and then answered UNAVAILABLE twice (as a gateway whose Redis write landed
 * but whose publish failed), so only a retry with the same key gets its id without creating another.
 */
async function submitTask(request: SubmitTaskRequest | SubmitTaskAndStreamStatusRequest) {
  requests.submit.push(request);
  if (request.type === "nope") throw new ConnectError('type: unknown task type "nope"', Code.InvalidArgument);
  const key = request.idempotencyKey;
  const calls = (callsByKey.get(key) ?? 0) + 1;
  if (key) callsByKey.set(key, calls);
  let taskId = key ? byKey.get(key) : undefined;
  const deduplicated = taskId !== undefined;
  if (!taskId) {
    taskId = `task-${tasks.size + 1}`;
    tasks.set(taskId, {
      type: request.type,
      priority: request.priority,
      payload: request.payload,
      metadata: request.metadata,
    });
    if (key) byKey.set(key, taskId);
  }
  if (request.metadata.source === "taskctl-demo" && unavailableDemoCalls > 0) {
    unavailableDemoCalls--;
    throw new ConnectError("NATS unavailable while queueing the task: timeout", Code.Unavailable);
  }
  if (request.type === "unsteady" && (!key || calls <= 2)) {
    throw new ConnectError("NATS unavailable while queueing the task: timeout", Code.Unavailable);
  }
  return { taskId, deduplicated };
}

/**
 * The stand-in gateway's GetTaskLogs, from a cursor as the gateway's: task "chatty" has logged two lines (of three, the
 * oldest dropped); a later ask finds one more, then the task finished; "quiet" logged nothing and has finished.
 */
const chattyLines = [
  { cursor: "2", level: "info", message: "uploading part 7", attempt: 1, fields: { part: 7 } },
  { cursor: "3", level: "warn", message: "slow downstream", attempt: 2 },
  { cursor: "4", level: "error", message: "gave up on part 9", attempt: 2 },
];
const logAsks: string[] = [];
async function getTaskLogs({ taskId, after }: { taskId: string; after: string }) {
  logAsks.push(`${taskId} ${after}`);
  if (taskId === "quiet") return { lines: [], nextCursor: after, total: 0, dropped: 0, finished: true };
  // "shaky": its gateway is unavailable once between its line and the end.
  if (taskId === "shaky") {
    const asks = logAsks.filter((ask) => ask.startsWith("shaky ")).length;
    if (asks === 2) throw new ConnectError("gateway restarting", Code.Unavailable);
    const line = {
      cursor: "1",
      level: "info",
      message: "still here",
      attempt: 1,
      time: timestampFromDate(new Date(0)),
    };
    return asks === 1
      ? { lines: [line], nextCursor: "1", total: 1, dropped: 0, finished: false }
      : { lines: [], nextCursor: "1", total: 1, dropped: 0, finished: true };
  }
  if (taskId !== "chatty") throw new ConnectError(`task ${taskId} not found`, Code.NotFound);
  // The third line is logged once the first two were read (a follower's later ask), and the task then finishes.
  const shown = logAsks.filter((ask) => ask.startsWith("chatty ")).length > 1 ? 3 : 2;
  const lines = chattyLines
    .slice(0, shown)
    .filter((line) => after === "" || Number.parseInt(line.cursor, 10) > Number.parseInt(after, 10))
    .map((line) => ({ ...line, time: timestampFromDate(new Date(`2026-12-07T12:00:0${line.cursor[0]}Z`)) }));
  return { lines, nextCursor: lines.at(-1)?.cursor ?? after, total: shown + 1, dropped: 1, finished: shown === 3 };
}

/** The stand-in gateway's StreamTaskStatus: the type's lifecycle, a "hiccup" task's first stream breaking off. */
async function* streamTaskStatus({ taskId }: { taskId: string }) {
  const task = tasks.get(taskId);
  if (!task) throw new ConnectError(`task ${taskId} not found`, Code.NotFound);
  let version = 0n;
  const hiccup = task.type === "hiccup" && !hiccupped.has(taskId);
  for (const status of lifecycleOf(task.type)) {
    if (hiccup && version === 2n) {
      hiccupped.add(taskId);
      throw new ConnectError("gateway shutting down", Code.Unavailable);
    }
    // Let each update leave as its own message, as a real pipeline's would.
    await new Promise((resolve) => setImmediate(resolve));
    yield { taskId, status: { ...status, version: ++version, updatedAt: timestampNow() } };
  }
}

beforeAll(async () => {
  server = new grpc.Server();
  addService(server, TaskService, {
    submitTask,
    getTaskLogs,
    submitTaskAndStreamStatus: async function* (request, context) {
      requests.submitAndStream++;
      if (request.type === "silent") {
        // A gateway that accepts the call and never answers: held until the client ends it.
        await new Promise<void>((resolve) => context.signal.addEventListener("abort", () => resolve(), { once: true }));
        silentCallsEnded++;
        return;
      }
      const { taskId, deduplicated } = await submitTask(request);
      for await (const message of streamTaskStatus({ taskId })) yield { ...message, deduplicated };
    },
    streamTaskStatus,
    // As the gateway answers SubmitTasks: each task as SubmitTask, one outcome each, a refusal its own.
    submitTasks: async ({ tasks: batch }) => {
      requests.batches.push(batch.length);
      // A "throttled" batch is refused by the rate limit once, with a pushback, as the gateway does.
      if (batch.some((task) => task.type === "throttled") && throttledOnce++ === 0) {
        throw new ConnectError(
          "rate limit exceeded for caller cli: 1 requests/s (retry after 60 ms)",
          Code.ResourceExhausted,
          retryPushback(60),
        );
      }
      if (batch.some((task) => task.type === "quota")) {
        throw new ConnectError(
          "rate limit exceeded for caller cli: 1 requests/s (retry after 900 ms)",
          Code.ResourceExhausted,
        );
      }
      const outcomes = [];
      for (const [index, request] of batch.entries()) {
        try {
          outcomes.push({ outcome: { case: "accepted" as const, value: await submitTask(request) } });
        } catch (error) {
          const { code, rawMessage } = ConnectError.from(error);
          outcomes.push({
            outcome: { case: "error" as const, value: { code, message: `tasks[${index}]: ${rawMessage}` } },
          });
        }
      }
      return { outcomes };
    },
    getTask: async ({ taskId }) => {
      const task = tasks.get(taskId);
      if (!task) throw new ConnectError(`task ${taskId} not found`, Code.NotFound);
      const last = lifecycleOf(task.type).at(-1)!;
      return { task: { taskId, ...task, status: { ...last, version: 1n, updatedAt: timestampNow() } } };
    },
    cancelTask: async ({ taskId }) => {
      if (!tasks.has(taskId)) throw new ConnectError(`task ${taskId} not found`, Code.NotFound);
      return { status: { state: TaskState.CANCELLED, version: 9n } };
    },
    // A stand-in where every task but "waiting" has run already.
    promoteTask: async ({ taskId }) => {
      if (taskId === "waiting") {
        return { previousRunAt: timestampFromDate(new Date("2030-01-01T00:00:00Z")), runAt: timestampNow() };
      }
      if (!tasks.has(taskId)) throw new ConnectError(`task ${taskId} not found`, Code.NotFound);
      throw new ConnectError(`task ${taskId} is not waiting for its time: it is SUCCEEDED`, Code.FailedPrecondition);
    },
  });
  const health = new HealthRegistry();
  health.set("", ServingStatus.SERVING);
  health.addTo(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  addr = `http://127.0.0.1:${port}`;
  tls = createTlsFiles();
  const [ca, cert, key] = [tls.caFile, tls.certFile, tls.keyFile].map((file) => readFileSync(file));
  const tlsPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createSsl(ca!, [{ cert_chain: cert!, private_key: key! }], true),
      (error, bound) => (error ? reject(error) : resolve(bound)),
    ),
  );
  tlsAddr = `https://127.0.0.1:${tlsPort}`;
});

afterAll(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
afterAll(() => tls?.dispose());

/** A JSON Lines file of these objects (an empty object: a blank line), in a directory removed after the file's tests. */
function batchFile(lines: object[]): string {
  batchDir ??= mkdtempSync(join(tmpdir(), "tm-batch-"));
  const file = join(batchDir, `${crypto.randomUUID()}.jsonl`);
  writeFileSync(file, lines.map((line) => (Object.keys(line).length === 0 ? "" : JSON.stringify(line))).join("\n"));
  return file;
}
let batchDir: string | undefined;
afterAll(() => {
  if (batchDir) rmSync(batchDir, { recursive: true, force: true });
});

/** taskctl against the stand-in (plain-text, unless the args name another --addr). */
async function taskctl(args: string[], options: { tty?: boolean; env?: Record<string, string> } = {}) {
  let stdout = "";
  let stderr = "";
  const io: Io = {
    stdout: { write: (text: string) => (stdout += text), isTTY: options.tty ?? false, columns: 120 },
    stderr: { write: (text: string) => (stderr += text) },
    env: options.env ?? {},
  };
  const exitCode = await run(args.includes("--addr") ? args : [...args, "--addr", addr], io);
  return { exitCode, stdout, stderr };
}

describe("taskctl against a real gRPC server", () => {
  test("submit prints the task id and sends what was asked", async () => {
    const { exitCode, stdout } = await taskctl([
      "submit",
      "echo",
      "--payload",
      '{"x":1}',
      "--priority",
      "high",
      "--meta",
      "team=qa",
    ]);
    expect(exitCode).toBe(ExitCode.Ok);
    const taskId = stdout.trim();
    expect(taskId).toMatch(/^task-\d+$/);
    expect(tasks.get(taskId)).toEqual({
      type: "echo",
      priority: Priority.HIGH,
      payload: { x: 1 },
      metadata: { team: "qa" },
    });
  });

  test("submit --concurrency-key and --concurrency-limit reach the gateway, with --watch too", async () => {
    const flags = ["--concurrency-key", "tenant:acme", "--concurrency-limit", "2"];
    const before = requests.submit.length;
    expect((await taskctl(["submit", "echo", ...flags])).exitCode).toBe(ExitCode.Ok);
    expect((await taskctl(["submit", "echo", "--watch", ...flags])).exitCode).toBe(ExitCode.Ok);
    const sent = requests.submit.slice(before) as SubmitTaskRequest[];
    expect(sent.map(({ concurrencyKey, concurrencyLimit }) => ({ concurrencyKey, concurrencyLimit }))).toEqual([
      { concurrencyKey: "tenant:acme", concurrencyLimit: 2 },
      { concurrencyKey: "tenant:acme", concurrencyLimit: 2 },
    ]);
    // One without the other is refused before anything is sent.
    const alone = await taskctl(["submit", "echo", "--concurrency-key", "tenant:acme"]);
    expect(alone.exitCode).toBe(ExitCode.Usage);
    expect(alone.stderr).toContain("--concurrency-key goes with --concurrency-limit N");
    expect(requests.submit.length - before).toBe(2);
  });

  test("submit --fairness-key, with --fairness-weight or without, reaches the gateway, with --watch too", async () => {
    const before = requests.submit.length;
    const weighted = ["--fairness-key", "tenant:acme", "--fairness-weight", "3"];
    expect((await taskctl(["submit", "echo", ...weighted])).exitCode).toBe(ExitCode.Ok);
    expect((await taskctl(["submit", "echo", "--watch", ...weighted])).exitCode).toBe(ExitCode.Ok);
    expect((await taskctl(["submit", "echo", "--fairness-key", "tenant:acme"])).exitCode).toBe(ExitCode.Ok);
    const sent = requests.submit.slice(before) as SubmitTaskRequest[];
    // No weight given: 0 on the wire, the gateway's default (1).
    expect(sent.map(({ fairnessKey, fairnessWeight }) => ({ fairnessKey, fairnessWeight }))).toEqual([
      { fairnessKey: "tenant:acme", fairnessWeight: 3 },
      { fairnessKey: "tenant:acme", fairnessWeight: 3 },
      { fairnessKey: "tenant:acme", fairnessWeight: 0 },
    ]);
    // A weight without a key, or out of range, is refused before anything is sent.
    const alone = await taskctl(["submit", "echo", "--fairness-weight", "3"]);
    expect(alone.exitCode).toBe(ExitCode.Usage);
    expect(alone.stderr).toContain("--fairness-weight goes with --fairness-key KEY");
    const heavy = await taskctl(["submit", "echo", "--fairness-key", "t", "--fairness-weight", "1001"]);
    expect(heavy.exitCode).toBe(ExitCode.Usage);
    expect(heavy.stderr).toContain('--fairness-weight must be a whole number from 1 to 1000 (got "1001")');
    expect(requests.submit.length - before).toBe(3);
  });

  test("--json output parses, one object per line for streams", async () => {
    const submitted = await taskctl(["submit", "sleep", "--json"]);
    expect(JSON.parse(submitted.stdout)).toMatchObject({ taskId: expect.any(String), deduplicated: false });

    const watched = await taskctl(["watch", JSON.parse(submitted.stdout).taskId, "--json"]);
    const lines = watched.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.map((line) => line.status.state)).toEqual([
      "TASK_STATE_PENDING",
      "TASK_STATE_INGESTED",
      "TASK_STATE_SCHEDULED",
      "TASK_STATE_RUNNING",
      "TASK_STATE_RUNNING",
      "TASK_STATE_RUNNING",
      "TASK_STATE_SUCCEEDED",
    ]);
    expect(watched.exitCode).toBe(ExitCode.Ok);
  });

  test("submit retries UNAVAILABLE with one made-up idempotency key: one task, its id printed", async () => {
    const before = requests.submit.length;
    const tasksBefore = tasks.size;
    const { exitCode, stdout, stderr } = await taskctl(["submit", "unsteady", "--json"]);
    expect(exitCode).toBe(ExitCode.Ok);
    const sent = requests.submit.slice(before) as SubmitTaskRequest[];
    expect(sent).toHaveLength(3);
    const keys = new Set(sent.map((request) => request.idempotencyKey));
    expect(keys.size).toBe(1);
    expect([...keys][0]).toMatch(/^taskctl-[0-9a-f-]{36}$/);
    expect(tasks.size - tasksBefore).toBe(1);
    // The retry that found the first attempt's task is not "deduplicated" to the user: the key was this run's own.
    expect(JSON.parse(stdout)).toEqual({ taskId: `task-${tasksBefore + 1}`, deduplicated: false });
    expect(stderr.trim().split("\n")).toEqual([
      "gateway unavailable (NATS unavailable while queueing the task: timeout); retrying in 0.25 s (attempt 2 of 5)",
      "gateway unavailable (NATS unavailable while queueing the task: timeout); retrying in 0.5 s (attempt 3 of 5)",
    ]);
  });

  test("submit keeps the user's idempotency key on retries; --retries 0 fails at once with exit 4", async () => {
    const before = requests.submit.length;
    const kept = await taskctl(["submit", "unsteady", "--idempotency-key", "order-17"]);
    expect(kept.exitCode).toBe(ExitCode.Ok);
    expect((requests.submit.slice(before) as SubmitTaskRequest[]).map((r) => r.idempotencyKey)).toEqual([
      "order-17",
      "order-17",
      "order-17",
    ]);

    const once = requests.submit.length;
    const failed = await taskctl(["submit", "unsteady", "--retries", "0"]);
    expect(failed.exitCode).toBe(ExitCode.Unavailable);
    const sent = requests.submit.slice(once) as SubmitTaskRequest[];
    expect(sent.map((r) => r.idempotencyKey)).toEqual([""]);
    expect(failed.stderr).not.toContain("retrying");
  });

  test("submit --watch retries the call until it names the task, then follows it to SUCCEEDED", async () => {
    const calls = requests.submitAndStream;
    const { exitCode, stdout, stderr } = await taskctl(["submit", "unsteady", "--watch"]);
    expect(requests.submitAndStream - calls).toBe(3);
    expect(stderr.match(/retrying in/g)).toHaveLength(2);
    expect(exitCode).toBe(ExitCode.Ok);
    expect(stdout.trim().split("\n").at(-1)).toMatch(/unsteady +SUCCEEDED +█+ 100%/);
  });

  test("submit --watch renders until SUCCEEDED and exits 0 (plain lines when not a TTY)", async () => {
    const calls = requests.submitAndStream;
    const { exitCode, stdout } = await taskctl(["submit", "checksum", "--watch"]);
    expect(requests.submitAndStream - calls).toBe(1); // submitted and followed in one call
    expect(exitCode).toBe(ExitCode.Ok);
    const lines = stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^task-\d+$/);
    expect(lines.at(-1)).toMatch(/checksum +SUCCEEDED +█+ 100%/);
    expect(stdout).not.toContain("\x1b[");
  });

  test("watch on a TTY redraws one line per task in place", async () => {
    const a = (await taskctl(["submit", "echo"])).stdout.trim();
    const b = (await taskctl(["submit", "fail"])).stdout.trim();
    const { exitCode, stdout } = await taskctl(["watch", a, b], { tty: true });
    expect(exitCode).toBe(ExitCode.TaskFailed);
    expect(stdout).toContain("\x1b[2F"); // cursor back up over the two task lines
    const finalFrame = stdout
      .split("\x1b[2F")
      .at(-1)!
      .replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, "g"), "");
    expect(finalFrame).toMatch(new RegExp(`${a} +echo +SUCCEEDED`));
    expect(finalFrame).toMatch(new RegExp(`${b} +fail +FAILED .*always fails`));
  });

  test("a stream that ends with UNAVAILABLE is re-opened and followed to the end", async () => {
    const { exitCode, stdout } = await taskctl(["submit", "hiccup", "--watch", "--json"]);
    const states = stdout
      .trim()
      .split("\n")
      .slice(1)
      .map((line) => JSON.parse(line).status.state);
    expect(states).toEqual([
      "TASK_STATE_PENDING",
      "TASK_STATE_INGESTED",
      "TASK_STATE_SCHEDULED",
      "TASK_STATE_RUNNING",
      "TASK_STATE_RUNNING",
      "TASK_STATE_RUNNING",
      "TASK_STATE_SUCCEEDED",
    ]);
    expect(exitCode).toBe(ExitCode.Ok);
  });

  test("a FAILED task exits 1", async () => {
    const { exitCode, stdout } = await taskctl(["submit", "fail", "--watch"]);
    expect(exitCode).toBe(ExitCode.TaskFailed);
    expect(stdout.trim().split("\n").at(-1)).toMatch(/FAILED .*always fails/);
  });

  test("get, cancel, not found and invalid argument", async () => {
    const taskId = (await taskctl(["submit", "echo", "--payload", '{"k":"v"}'])).stdout.trim();
    const got = await taskctl(["get", taskId]);
    expect(got.stdout).toMatch(/state +SUCCEEDED/);
    expect(got.stdout).toContain('payload   {"k":"v"}');
    expect((await taskctl(["cancel", taskId, "--reason", "test"])).stdout.trim()).toBe(`${taskId} CANCELLED`);

    // promote: a task that is not waiting is exit 1 with the gateway's reason; one that is, when it was due.
    expect(await taskctl(["promote", taskId])).toMatchObject({
      exitCode: ExitCode.TaskFailed,
      stdout: "",
      stderr: `task ${taskId} is not waiting for its time: it is SUCCEEDED\n`,
    });
    expect((await taskctl(["promote", "waiting"])).stdout).toBe(
      "waiting promoted: due now (was due 2030-01-01T00:00:00.000Z); queued now\n",
    );
    const promotedJson = JSON.parse((await taskctl(["promote", "waiting", "--json"])).stdout);
    expect(promotedJson).toMatchObject({ taskId: "waiting", previousRunAt: "2030-01-01T00:00:00Z" });
    expect((await taskctl(["promote", "no-such-task"])).exitCode).toBe(ExitCode.NotFound);
    expect((await taskctl(["promote"])).exitCode).toBe(ExitCode.Usage);

    const missing = await taskctl(["get", "no-such-task"]);
    expect(missing).toMatchObject({
      exitCode: ExitCode.NotFound,
      stderr: "taskctl: not found: task no-such-task not found\n",
    });
    const invalid = await taskctl(["submit", "nope"]);
    expect(invalid.exitCode).toBe(ExitCode.Usage);
    expect(invalid.stderr).toContain('unknown task type "nope"');
    // The same refusal when submitting and following in one call: nothing is printed as a task id.
    const invalidWatched = await taskctl(["submit", "nope", "--watch"]);
    expect(invalidWatched).toMatchObject({ exitCode: ExitCode.Usage, stdout: "" });
    expect(invalidWatched.stderr).toContain('unknown task type "nope"');
  });

  test("logs prints a task's lines, says what was dropped, follows until finished; --json; none; not found", async () => {
    logAsks.length = 0;
    const once = await taskctl(["logs", "chatty"]);
    expect(once).toMatchObject({
      exitCode: ExitCode.Ok,
      stdout:
        '2026-12-07T12:00:02.000Z  INFO   #1  uploading part 7  {"part":7}\n' +
        "2026-12-07T12:00:03.000Z  WARN   #2  slow downstream\n",
      stderr: "(1 older lines of 3 were not kept: over WORKER_TASK_LOG_LINES)\n",
    });
    // Followed: the line logged later, then an empty page once the task had finished ends it.
    logAsks.length = 0;
    const followed = await taskctl(["logs", "chatty", "-f"]);
    expect(
      followed.stdout
        .split("\n")
        .filter(Boolean)
        .map((line) => line.slice(26)),
    ).toEqual([
      'INFO   #1  uploading part 7  {"part":7}',
      "WARN   #2  slow downstream",
      "ERROR  #2  gave up on part 9",
    ]);
    expect(logAsks).toEqual(["chatty ", "chatty 3", "chatty 4"]);
    const json = await taskctl(["logs", "chatty", "--json"]);
    expect(
      json.stdout
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line))[0],
    ).toEqual({
      cursor: "2",
      time: "2026-12-07T12:00:02Z",
      level: "info",
      message: "uploading part 7",
      attempt: 1,
      fields: { part: 7 },
    });
    expect(await taskctl(["logs", "quiet", "--follow"])).toMatchObject({
      exitCode: ExitCode.Ok,
      stdout: "",
      stderr: "no lines logged by task quiet (its handler's ctx.log lines show here)\n",
    });
    // A gateway unavailable for a moment: the follower says so once and goes on to the end.
    const shaky = await taskctl(["logs", "shaky", "-f"]);
    expect(shaky).toMatchObject({
      exitCode: ExitCode.Ok,
      stderr: "(the gateway is unavailable: gateway restarting; retrying)\n",
    });
    expect(shaky.stdout).toContain("INFO   #1  still here\n");
    // Without --follow an outage is the answer: exit 4.
    logAsks.length = 0;
    logAsks.push("shaky ");
    expect((await taskctl(["logs", "shaky"])).exitCode).toBe(ExitCode.Unavailable);
    expect(await taskctl(["logs", "gone"])).toMatchObject({
      exitCode: ExitCode.NotFound,
      stderr: "taskctl: not found: task gone not found\n",
    });
    expect((await taskctl(["logs"])).exitCode).toBe(ExitCode.Usage);
  });

  test("demo submits the mix, follows it and prints a summary", async () => {
    const calls = requests.submitAndStream;
    const { exitCode, stdout } = await taskctl(["demo", "--count", "6"]);
    expect(requests.submitAndStream - calls).toBe(6); // each task submitted and followed in one call
    expect(stdout).toMatch(/submitted 6 tasks/);
    expect(stdout).toMatch(/SUCCEEDED +5\n/);
    expect(stdout).toMatch(/FAILED +1\n/);
    expect(stdout).toMatch(/time to terminal: p50 .*, max /);
    expect(exitCode).toBe(ExitCode.Ok);
  });

  test("demo retries a call the gateway could not take, under that task's own idempotency key: one task each", async () => {
    unavailableDemoCalls = 3;
    const calls = requests.submitAndStream;
    const before = requests.submit.length;
    const tasksBefore = tasks.size;
    const { exitCode, stdout, stderr } = await taskctl(["demo", "--count", "6"]);
    expect(exitCode).toBe(ExitCode.Ok);
    expect(requests.submitAndStream - calls).toBe(9); // the three refused calls made again
    expect(tasks.size - tasksBefore).toBe(6);
    const callsPerKey = new Map<string, number>();
    for (const request of requests.submit.slice(before) as SubmitTaskRequest[]) {
      callsPerKey.set(request.idempotencyKey, (callsPerKey.get(request.idempotencyKey) ?? 0) + 1);
    }
    expect([...callsPerKey.keys()].every((key) => /^taskctl-[0-9a-f-]{36}$/.test(key))).toBe(true);
    expect([...callsPerKey.values()].sort()).toEqual([1, 1, 1, 2, 2, 2]);
    expect(stderr.match(/^gateway unavailable \(.*\); retrying in 0\.25 s \(attempt 2 of 5\)$/gm)).toHaveLength(3);
    expect(stdout).toMatch(/SUCCEEDED +5\n/);
  });

  test("submit-batch sends a file's tasks --batch-size per call and prints one line per task in order; a refused one exits 2", async () => {
    const file = batchFile([
      { type: "echo", payload: { n: 1 }, priority: "PRIORITY_HIGH", metadata: { team: "qa" } },
      { type: "nope" },
      {},
      { type: "sleep", payload: { ms: 5 } },
      { type: "echo", idempotencyKey: "batch-k1" },
    ]);
    const before = requests.batches.length;
    const { exitCode, stdout, stderr } = await taskctl(["submit-batch", file, "--batch-size", "2"]);
    expect(requests.batches.slice(before)).toEqual([2, 2]);
    const lines = stdout.trim().split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^task-\d+$/);
    expect(lines[1]).toBe('error INVALID_ARGUMENT: line 2: type: unknown task type "nope"');
    expect(lines[2]).toMatch(/^task-\d+$/);
    expect(lines[3]).toMatch(/^task-\d+$/);
    expect(tasks.get(lines[0]!)).toEqual({
      type: "echo",
      priority: Priority.HIGH,
      payload: { n: 1 },
      metadata: { team: "qa" },
    });
    expect(tasks.get(lines[2]!)?.type).toBe("sleep");
    expect(byKey.get("batch-k1")).toBe(lines[3]);
    expect(stderr).toContain("3 accepted, 1 refused");
    expect(exitCode).toBe(ExitCode.Usage);
  });

  test("submit-batch sends tasks answered UNAVAILABLE again with their keys (made for a line without): one task each", async () => {
    const file = batchFile([{ type: "unsteady", payload: { n: 1 } }, { type: "echo" }, { type: "unsteady" }]);
    const before = requests.batches.length;
    const { exitCode, stdout, stderr } = await taskctl(["submit-batch", file, "--json"]);
    expect(exitCode).toBe(ExitCode.Ok);
    // The first call took the echo; the two unsteady tasks were answered UNAVAILABLE twice, then taken.
    expect(requests.batches.slice(before)).toEqual([3, 2, 2]);
    const outcomes = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(outcomes.map((o) => o.line)).toEqual([1, 2, 3]);
    expect(outcomes.every((o) => typeof o.taskId === "string" && o.deduplicated === false)).toBe(true);
    for (const { taskId } of [outcomes[0], outcomes[2]]) expect(tasks.get(taskId)?.type).toBe("unsteady");
    expect(new Set(outcomes.map((o) => o.taskId)).size).toBe(3);
    expect(stderr).toContain(
      "(2 task(s) not taken: NATS unavailable while queueing the task: timeout); retrying in 0.25 s (attempt 2 of 5)",
    );
    expect(stderr).toContain("3 accepted");
  });

  test("submit-batch waits out a rate limit for the gateway's pushback and sends the same tasks again", async () => {
    const file = batchFile([{ type: "throttled" }, { type: "echo" }]);
    const before = requests.batches.length;
    const { exitCode, stdout, stderr } = await taskctl(["submit-batch", file]);
    expect(exitCode).toBe(ExitCode.Ok);
    expect(requests.batches.slice(before)).toEqual([2, 2]);
    expect(stdout.trim().split("\n")).toHaveLength(2);
    expect(stderr).toContain(
      "rate limited (rate limit exceeded for caller cli: 1 requests/s (retry after 60 ms)); retrying in 0.06 s (attempt 2 of 5)",
    );
    expect(stderr).toContain("2 accepted");
  });

  test("submit-batch: a call refused as a whole still prints the ids already accepted; the rest are not sent (exit 5)", async () => {
    const file = batchFile([{ type: "echo" }, { type: "echo" }, { type: "quota" }, { type: "echo" }, { type: "echo" }]);
    const before = requests.batches.length;
    const { exitCode, stdout, stderr } = await taskctl(["submit-batch", file, "--batch-size", "2"]);
    // The second call was refused: no third call.
    expect(requests.batches.slice(before)).toEqual([2, 2]);
    const lines = stdout.trim().split("\n");
    expect(lines.slice(0, 2).every((line) => /^task-\d+$/.test(line))).toBe(true);
    for (const [i, line] of lines.slice(2).entries()) {
      expect(line).toBe(
        `error RESOURCE_EXHAUSTED: line ${i + 3}: not sent: server error (ResourceExhausted): rate limit exceeded for caller cli: 1 requests/s (retry after 900 ms)`,
      );
    }
    expect(stderr).toContain("2 accepted, 3 refused");
    expect(exitCode).toBe(ExitCode.ServerError);
  });

  test("submit-batch reads every line before sending: a malformed one exits 2 naming it, nothing sent", async () => {
    const file = batchFile([{ type: "echo" }]);
    writeFileSync(file, '{"type":"echo"}\n{"type":"echo","priority":"URGENT"}\n');
    const before = requests.batches.length;
    const { exitCode, stderr } = await taskctl(["submit-batch", file]);
    expect(exitCode).toBe(ExitCode.Usage);
    expect(stderr).toMatch(/^taskctl: line 2: not a task \(a SubmitTaskRequest in JSON\): .*URGENT/);
    expect(requests.batches.length).toBe(before);
    const missing = await taskctl(["submit-batch", join(tmpdir(), "no-such-file.jsonl")]);
    expect(missing.exitCode).toBe(ExitCode.Usage);
    expect(missing.stderr).toContain("cannot read");
  });

  test("health reports SERVING", async () => {
    expect(await taskctl(["health"])).toMatchObject({ exitCode: ExitCode.Ok, stdout: `${addr} SERVING\n` });
  });

  test("over TLS: a private CA and a client certificate from flags or the environment; what is missing is named", async () => {
    const flags = ["--tls-ca-file", tls.caFile, "--tls-cert-file", tls.certFile, "--tls-key-file", tls.keyFile];
    expect(await taskctl(["health", "--addr", tlsAddr, ...flags])).toMatchObject({
      exitCode: ExitCode.Ok,
      stdout: `${tlsAddr} SERVING\n`,
    });
    const env = {
      TASKCTL_TLS_CA_FILE: tls.caFile,
      TASKCTL_TLS_CERT_FILE: tls.certFile,
      TASKCTL_TLS_KEY_FILE: tls.keyFile,
    };
    const id = (await taskctl(["submit", "echo", "--addr", tlsAddr], { env })).stdout.trim();
    expect((await taskctl(["get", id, "--addr", tlsAddr], { env })).stdout).toMatch(/state +SUCCEEDED/);

    // The system's CAs do not know the throwaway one: refused at once (exit 4), naming the certificate.
    const untrusted = await taskctl([
      "health",
      "--addr",
      tlsAddr,
      "--tls-cert-file",
      tls.certFile,
      "--tls-key-file",
      tls.keyFile,
    ]);
    expect(untrusted.exitCode).toBe(ExitCode.Unavailable);
    expect(untrusted.stderr).toMatch(
      new RegExp(
        `^taskctl: the TLS connection to ${tlsAddr} failed: self-signed certificate in certificate chain \\(--tls-ca-file`,
      ),
    );
    // Trusted, but without the client certificate the server asks for: its refusal is named the same way.
    const anonymous = await taskctl(["health", "--addr", tlsAddr, "--tls-ca-file", tls.caFile]);
    expect(anonymous.exitCode).toBe(ExitCode.Unavailable);
    expect(anonymous.stderr).toMatch(/^taskctl: the TLS connection to .* failed: /);
    expect(await taskctl(["health", "--addr", addr, "--tls-ca-file", tls.caFile])).toMatchObject({
      exitCode: ExitCode.Usage,
      stderr: `taskctl: --tls-*-file options need an https:// address (--addr ${addr})\n`,
    });
    expect(await taskctl(["health", "--addr", tlsAddr, "--tls-cert-file", tls.certFile])).toMatchObject({
      exitCode: ExitCode.Usage,
      stderr: "taskctl: --tls-cert-file and --tls-key-file go together: give both, or neither\n",
    });
    expect(await taskctl(["health", "--addr", tlsAddr, "--tls-ca-file", "/no/such/ca.pem"])).toMatchObject({
      exitCode: ExitCode.Usage,
      stderr: expect.stringContaining("taskctl: --tls-ca-file: cannot read /no/such/ca.pem: ENOENT"),
    });
  });

  test("an unreachable address exits 4 with the clear message, after submit's retries", async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    let stderr = "";
    const io: Io = { stdout: { write: () => true }, stderr: { write: (t: string) => (stderr += t) }, env: {} };
    const message = `taskctl: cannot reach the gateway at ${closed}: is the stack running? (pnpm start)\n`;
    expect(await run(["submit", "echo", "--addr", closed, "--retries", "0"], io)).toBe(ExitCode.Unavailable);
    expect(stderr).toBe(message);
    stderr = "";
    expect(await run(["submit", "echo", "--addr", closed, "--retries", "2"], io)).toBe(ExitCode.Unavailable);
    const lines = stderr.split("\n");
    expect(lines.slice(0, 2)).toEqual([
      expect.stringMatching(/^gateway unavailable \(.*ECONNREFUSED.*\); retrying in 0.25 s \(attempt 2 of 3\)$/),
      expect.stringMatching(/^gateway unavailable \(.*ECONNREFUSED.*\); retrying in 0.5 s \(attempt 3 of 3\)$/),
    ]);
    expect(lines.slice(2).join("\n")).toBe(message);

    // watch follows with the status stream: an address never reached fails at once, not after a minute of outage.
    stderr = "";
    const startedAt = performance.now();
    expect(await run(["watch", "some-task", "--addr", closed], io)).toBe(ExitCode.Unavailable);
    expect(stderr).toBe(message);
    expect(performance.now() - startedAt).toBeLessThan(10_000);
  });
});

describe("submitAndStream's first-message deadline", () => {
  test("a gateway that never names the task fails the call with DEADLINE_EXCEEDED and ends it", async () => {
    const client = createTaskClient({ baseUrl: addr });
    const ended = silentCallsEnded;
    const startedAt = performance.now();
    const error = await submitAndStream(
      client,
      { type: "silent", priority: Priority.MEDIUM, metadata: {} },
      undefined,
      300,
    )
      .then(() => undefined)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect((error as ConnectError).message).toMatch(/no answer within 300 ms/);
    // The given deadline applied: not before it, and long before the default 10 s one.
    const elapsedMs = performance.now() - startedAt;
    expect(elapsedMs).toBeGreaterThanOrEqual(290);
    expect(elapsedMs).toBeLessThan(5_000);
    // The stand-in sees the call ended, so nothing is left open on the gateway's side.
    await waitFor("the silent call ended on the server", () => silentCallsEnded > ended, { timeoutMs: 5_000 });
  });

  test("a first message in time resolves with the task and its stream", async () => {
    const client = createTaskClient({ baseUrl: addr });
    const submitted = await submitAndStream(
      client,
      { type: "echo", priority: Priority.MEDIUM, metadata: {} },
      undefined,
      5_000,
    );
    expect(submitted.taskId).toMatch(/^task-\d+$/);
    const states: TaskState[] = [];
    for await (const message of submitted.messages) if (message.status) states.push(message.status.state);
    expect(states.at(-1)).toBe(TaskState.SUCCEEDED);
  });
});

describe("the built bin (dist/bundle/cli.js, one self-contained file)", () => {
  const cli = fileURLToPath(new URL("../dist/bundle/cli.js", import.meta.url));
  function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}) {
    return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env } });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk) => (stdout += chunk));
      child.stderr.on("data", (chunk) => (stderr += chunk));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
  }

  test("submits with TASKCTL_ADDR and exits 0", async () => {
    const { code, stdout } = await spawnCli(["submit", "echo"], { TASKCTL_ADDR: addr });
    expect(stdout.trim()).toMatch(/^task-\d+$/);
    expect(code).toBe(0);
  });

  test("exit 2 on a bad payload, 4 when nothing listens", async () => {
    const bad = await spawnCli(["submit", "echo", "--payload", "{oops", "--addr", addr]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--payload is not valid JSON/);
    const down = await spawnCli(["health", "--addr", `127.0.0.1:${await freePort()}`]);
    expect(down.code).toBe(4);
    expect(down.stderr).toMatch(/cannot reach the gateway at .*: is the stack running\? \(pnpm start\)/);
  });
});
