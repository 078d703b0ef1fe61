/**
 * End to end over real gRPC, NATS and Redis, every service its own process: tasks of every type and priority go
 * from SubmitTask to a stored result, streamed in order; a failing task ends FAILED after 5 attempts and is
 * dead-lettered; a second gateway streams work submitted to the first; cancellation of queued and running tasks;
 * bad input at the HTTP boundaries; the deployment's own task types (TASK_TYPES, WORKER_HANDLER_MODULES: the example
 * module the docs give), run by the built worker, one of them routed to a worker pool (TASK_ROUTES, WORKER_POOL) that a
 * second worker serves.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAdminClient, Priority, type SubmitTaskAndStreamStatusResponse, TaskState } from "@tm/proto";
import { readDeadLetters, readHistory } from "@tm/store";
import { REPO_ROOT, waitFor } from "@tm/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { FLOW_MESSAGES_PER_TASK } from "../bench/src/systems/raw-flow.js";
import { type Io, run } from "../services/client/src/run.js";
import { collectStream, type Pipeline, startPipeline, stateNames } from "./support/pipeline.js";
import { connectTo, countByTask } from "./support/reliability.js";

let pipeline: Pipeline;
/** The deployment's own task types, from the example module the docs give. */
const OWN_TYPES = "slugify,word-count,word-total,word-count-all";
const OWN_HANDLERS = join(REPO_ROOT, "docs", "examples", "handlers.mjs");
/** word-count and word-count-all run only on the workers of pool "text"; the others on the default pool's. The pool's
 *  worker starts after the gateway, so it is the one given the gateway's address for word-count-all's children. */
const ROUTES = "word-count=text,word-count-all=text";

beforeAll(async () => {
  pipeline = await startPipeline({
    // Every service reads TASK_TYPES (the gateway and ingest accept the types, the stages label metrics with them).
    env: { TASK_TYPES: OWN_TYPES, TASK_ROUTES: ROUTES },
    // LOG_LEVEL info: the example's handler logs at info through ctx.log (checked below).
    perService: {
      // A window of two for tasks with a fairness key (the fairness case): the worker runs two at once.
      gateway: { GATEWAY_FAIRNESS_WINDOW: "2" },
      worker: {
        WORKER_CONCURRENCY: "2",
        WORKER_HANDLER_MODULES: OWN_HANDLERS,
        LOG_LEVEL: "info",
        WORKER_ID: "worker-default",
      },
    },
  });
  // The pool's worker, with the same module: it takes only word-count, the default pool's worker never does.
  await pipeline.spawn(
    "worker",
    {
      WORKER_POOL: "text",
      WORKER_ID: "worker-text",
      WORKER_HANDLER_MODULES: OWN_HANDLERS,
      LOG_LEVEL: "info",
      WORKER_GATEWAY_URL: pipeline.gatewayUrl,
    },
    "worker-text",
  );
}, 90_000);
afterAll(async () => {
  await pipeline?.dispose();
});

const LIFECYCLE = ["PENDING", "INGESTED", "SCHEDULED", "RUNNING", "SUCCEEDED"];

type StatusChange = { taskId: string; state: string };

/** Every status change in the order the status script applied it (Redis publishes in the same script), from now on;
 *  disconnect `subscriber` when done. */
async function statusChanges(): Promise<{ changes: StatusChange[]; subscriber: Redis }> {
  const subscriber = new Redis(pipeline.redis.url);
  const changes: StatusChange[] = [];
  subscriber.on("pmessage", (_pattern, _channel, text: string) => {
    const { taskId, state } = JSON.parse(text) as StatusChange;
    changes.push({ taskId, state });
  });
  await subscriber.psubscribe("task_status:*");
  return { changes, subscriber };
}

/** Of `taskIds`, the most in the pipeline (ingested, scheduled or running) at once, and the order they started. */
function inPipeline(changes: StatusChange[], taskIds: string[]): { most: number; started: string[] } {
  const mine = new Set(taskIds);
  const active = new Set<string>();
  let most = 0;
  const started: string[] = [];
  for (const { taskId, state } of changes) {
    if (!mine.has(taskId)) continue;
    if (state === "SUCCEEDED" || state === "FAILED" || state === "CANCELLED") active.delete(taskId);
    else if (state !== "PENDING") active.add(taskId);
    if (state === "RUNNING" && !started.includes(taskId)) started.push(taskId);
    most = Math.max(most, active.size);
  }
  return { most, started };
}

describe("the pipeline", () => {
  test("tasks of every type and priority reach a stored result, streamed in order without gaps or duplicates", async () => {
    const cases: Array<{ type: string; payload: JsonObject; priority: Priority }> = [
      { type: "echo", payload: { hello: "world" }, priority: Priority.HIGH },
      { type: "sleep", payload: { ms: 400 }, priority: Priority.MEDIUM },
      { type: "checksum", payload: { data: "abc", rounds: 3 }, priority: Priority.LOW },
      { type: "flaky", payload: { failures: 1 }, priority: Priority.UNSPECIFIED },
    ];
    const results = await Promise.all(
      cases.map(async (c) => {
        const { taskId } = await pipeline.client.submitTask(c);
        const updates = await collectStream(pipeline.client, taskId);
        return { ...c, taskId, updates };
      }),
    );
    for (const { taskId, type, updates, payload } of results) {
      const states = stateNames(updates);
      expect(states.at(-1), `${type}: ${states.join(" → ")}`).toBe("SUCCEEDED");
      // Strictly increasing versions: no duplicates, never backwards.
      const versions = updates.map((u) => Number(u.status?.version));
      for (let i = 1; i < versions.length; i++) expect(versions[i]).toBeGreaterThan(versions[i - 1] as number);
      // No gaps: from the first state seen, every later stage of the lifecycle appears.
      const distinct = [...new Set(states)];
      const first = LIFECYCLE.indexOf(distinct[0] as string);
      expect(distinct, `${type}: ${states.join(" → ")}`).toEqual(LIFECYCLE.slice(first));
      expect(updates.every((u) => u.taskId === taskId)).toBe(true);

      const response = await fetch(`${pipeline.resultStoreUrl}/results/${taskId}`);
      expect(response.status).toBe(200);
      const stored = (await response.json()) as { taskId: string; type: string; output: unknown; attempts: number };
      expect(stored).toMatchObject({ taskId, type });
      if (type === "echo") expect(stored.output).toEqual(payload);
      if (type === "flaky") expect(stored.attempts).toBe(2);

      const { task } = await pipeline.client.getTask({ taskId });
      expect(task?.status?.state).toBe(TaskState.SUCCEEDED);
      expect(task?.type).toBe(type);
    }
    // Priority defaults to MEDIUM.
    const flaky = results.find((r) => r.type === "flaky")!;
    expect((await pipeline.client.getTask({ taskId: flaky.taskId })).task?.priority).toBe(Priority.MEDIUM);
    // Each stage's audit event is kept, in the task's history, in the order the task went through the stages (each
    // stage sends its audit event in the same write as the message that hands the task on).
    const echo = results.find((r) => r.type === "echo")!;
    await waitFor("every stage's audit event", async () => {
      const services = new Set((await readHistory(pipeline.redisClient, echo.taskId)).map((e) => e.service));
      return ["gateway", "ingest", "scheduler", "worker"].every((s) => services.has(s));
    });
    const actions = (await readHistory(pipeline.redisClient, echo.taskId)).map((e) => e.action);
    // (result-store's result_stored races the worker's succeeded: the worker sends it after the result's PubAck.)
    expect(actions.slice(0, 3)).toEqual(["submitted", "ingested", "scheduled"]);
    expect(actions.indexOf("succeeded")).toBeGreaterThan(2);
  });

  test("SubmitTaskAndStreamStatus takes an echo task from submission to SUCCEEDED in one call", async () => {
    const updates: SubmitTaskAndStreamStatusResponse[] = [];
    const signal = AbortSignal.timeout(30_000);
    for await (const update of pipeline.client.submitTaskAndStreamStatus(
      { type: "echo", payload: { one: "call" } },
      { signal },
    )) {
      updates.push(update);
    }
    const taskId = updates[0]?.taskId ?? "";
    expect(updates.every((u) => u.taskId === taskId && !u.deduplicated)).toBe(true);
    const states = updates.map((u) => TaskState[u.status?.state ?? 0]);
    expect([...new Set(states)]).toEqual(LIFECYCLE);
    const versions = updates.map((u) => Number(u.status?.version));
    for (let i = 1; i < versions.length; i++) expect(versions[i]).toBeGreaterThan(versions[i - 1] as number);
    // SUCCEEDED means the result can be fetched (the notifier holds it until the result is stored).
    const response = await fetch(`${pipeline.resultStoreUrl}/results/${taskId}`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { output: unknown }).output).toEqual({ one: "call" });

    // taskctl submit --watch makes the same one call against the real gateway: the id first, then every state.
    let stdout = "";
    const io: Io = { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: () => true }, env: {} };
    const exitCode = await run(["submit", "echo", "--watch", "--json", "--addr", pipeline.gatewayUrl], io);
    expect(exitCode).toBe(0);
    const [submitted, ...watched] = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(submitted).toEqual({ taskId: expect.any(String), deduplicated: false });
    expect(watched.every((line) => line.taskId === submitted.taskId)).toBe(true);
    expect([...new Set(watched.map((line) => line.status.state))]).toEqual(LIFECYCLE.map((s) => `TASK_STATE_${s}`));
  });

  test("an echo task sends the stream messages the benchmark's raw contract flow models, no more, no fewer", async () => {
    // bench/src/systems/raw-flow.ts measures the contract's message flow alone against this count; if the pipeline
    // sends more or fewer messages per task, that model (and docs/PERFORMANCE.md's ceiling) must change with it.
    const { taskId } = await pipeline.client.submitTask({ type: "echo", payload: { n: 1 }, priority: Priority.HIGH });
    expect(stateNames(await collectStream(pipeline.client, taskId)).at(-1)).toBe("SUCCEEDED");
    await waitFor("result_stored audited", async () =>
      (await readHistory(pipeline.redisClient, taskId)).some((e) => e.action === "result_stored"),
    );
    const nc = await connectTo(pipeline.nats.url);
    try {
      const counts = {
        tasks: (await countByTask(nc, "TASKS", "tasks.>")).get(taskId),
        status: (await countByTask(nc, "EVENTS", "events.status")).get(taskId),
        audit: (await countByTask(nc, "EVENTS", "events.audit")).get(taskId),
      };
      expect(counts).toEqual(FLOW_MESSAGES_PER_TASK);
    } finally {
      await nc.close();
    }
  });

  test("a fail task ends FAILED after 5 attempts and lands in dead_letter with its history", async () => {
    const { taskId } = await pipeline.client.submitTask({ type: "fail", payload: {} });
    const updates = await collectStream(pipeline.client, taskId);
    const last = updates.at(-1)?.status;
    expect(last?.state).toBe(TaskState.FAILED);
    expect(last?.attempt).toBe(5);
    expect(last?.error).toMatch(/fail/);
    await waitFor("the dead letter", async () =>
      (await readDeadLetters(pipeline.redisClient, 0, 1000)).some((l) => l.taskId === taskId),
    );
    const letter = (await readDeadLetters(pipeline.redisClient, 0, 1000)).find((l) => l.taskId === taskId)!;
    expect(letter).toMatchObject({ reason: "exhausted", attempts: 5 });
    expect(letter.subject).toMatch(/^tasks\.worker\./);
    // The snapshot is complete: it ends with the worker's failed event, published just before the letter (the
    // deadletter service waits for it, since the audit service appends in gathered batches).
    expect(letter.history?.map((event) => event.action)).toEqual([
      "submitted",
      "ingested",
      "scheduled",
      "attempt_failed",
      "attempt_failed",
      "attempt_failed",
      "attempt_failed",
      "failed",
    ]);
    expect((await fetch(`${pipeline.resultStoreUrl}/results/${taskId}`)).status).toBe(404);
  });

  test("the deployment's own task types run from WORKER_HANDLER_MODULES: a result, a refused payload, a permanent error, a wait asked for", async () => {
    const submitAndFollow = async (type: string, payload: JsonObject) => {
      const { taskId } = await pipeline.client.submitTask({ type, payload });
      return { taskId, last: (await collectStream(pipeline.client, taskId)).at(-1)?.status };
    };
    const slug = await submitAndFollow("slugify", { text: "Crème brûlée, twice!" });
    expect(slug.last?.state).toBe(TaskState.SUCCEEDED);
    const stored = await (await fetch(`${pipeline.resultStoreUrl}/results/${slug.taskId}`)).json();
    expect(stored).toMatchObject({ type: "slugify", output: { slug: "creme-brulee-twice" }, attempts: 1 });

    // Its handler's own schema refuses the payload, naming the field: FAILED at once, dead-lettered "rejected".
    const badPayload = await submitAndFollow("slugify", { text: 7 });
    expect(badPayload.last).toMatchObject({ state: TaskState.FAILED, attempt: 1 });
    expect(badPayload.last?.error).toContain("invalid slugify payload: text: must be a string");
    // An error the module names PermanentError: not retried.
    const permanent = await submitAndFollow("word-count", { words: 3 });
    expect(permanent.last).toMatchObject({ state: TaskState.FAILED, attempt: 1 });
    expect(permanent.last?.error).toContain("word-count needs a text");
    // One named RetryAfterError: retried after its wait, then SUCCEEDED on the second attempt.
    const busy = await submitAndFollow("word-count", { text: "three small words", busyFirst: true });
    expect(busy.last).toMatchObject({ state: TaskState.SUCCEEDED, attempt: 2 });
    // Its handler's line through ctx.log carries the task, in the log of the pool's worker.
    const logged = await pipeline.services.get("worker-text")!.process.waitForLine(/counted the words/);
    expect(JSON.parse(logged)).toMatchObject({ taskId: busy.taskId, type: "word-count", attempt: 2, words: 3 });
    // The same line is kept with the task, from the thread it ran in: GetTaskLogs and taskctl logs read it.
    const { lines } = await pipeline.client.getTaskLogs({ taskId: busy.taskId });
    expect(lines.map(({ level, message, attempt, fields }) => ({ level, message, attempt, fields }))).toEqual([
      { level: "info", message: "counted the words", attempt: 2, fields: { words: 3 } },
    ]);
    let printed = "";
    const io: Io = { stdout: { write: (text: string) => (printed += text) }, stderr: { write: () => true }, env: {} };
    expect(await run(["logs", busy.taskId, "--addr", pipeline.gatewayUrl], io)).toBe(0);
    expect(printed).toMatch(/^\S+Z {2}INFO {3}#2 {2}counted the words {2}\{"words":3\}\n$/);
    // word-count runs in a worker thread (isolation "thread"): the errors above and that line crossed it.
    const loaded = await pipeline.services.get("worker-text")!.process.waitForLine(/handlers loaded from/);
    expect(JSON.parse(loaded)).toMatchObject({ inThreads: ["word-count"] });
    const retried = (await readHistory(pipeline.redisClient, busy.taskId)).find((e) => e.action === "attempt_failed");
    expect(retried?.detail).toMatchObject({ retryInMs: 200, error: expect.stringContaining("the counter is busy") });
    await waitFor("both dead letters", async () => {
      const letters = await readDeadLetters(pipeline.redisClient, 0, 1000);
      return [badPayload, permanent].every(({ taskId }) =>
        letters.some((letter) => letter.taskId === taskId && letter.reason === "rejected"),
      );
    });

    // word-count went to pool "text" (TASK_ROUTES) and ran on its worker; slugify on the default pool's.
    const ranOn = async (taskId: string) => {
      const history = await readHistory(pipeline.redisClient, taskId);
      return {
        queue: history.find((entry) => entry.action === "scheduled")?.detail?.subject,
        worker: history.find((entry) => entry.action === "succeeded" || entry.action === "failed")?.detail?.worker,
      };
    };
    await waitFor("the tasks' last audit events", async () =>
      (await Promise.all([slug, busy, permanent].map((task) => ranOn(task.taskId)))).every((where) => where.worker),
    );
    expect(await ranOn(slug.taskId)).toEqual({ queue: "tasks.worker.medium", worker: "worker-default" });
    expect(await ranOn(busy.taskId)).toEqual({ queue: "tasks.worker.medium.text", worker: "worker-text" });
    expect(await ranOn(permanent.taskId)).toEqual({ queue: "tasks.worker.medium.text", worker: "worker-text" });

    // The workers' reports name the types they loaded and their pool (ListWorkers, taskctl workers).
    const { workers } = await createAdminClient({ baseUrl: pipeline.gatewayUrl }).listWorkers({});
    expect(
      workers
        .map(({ id, pool, ownTaskTypes, threadTaskTypes }) => ({ id, pool, ownTaskTypes, threadTaskTypes }))
        .sort((a, b) => (a.id < b.id ? -1 : 1)),
    ).toEqual(
      ["worker-default", "worker-text"].map((id) => ({
        id,
        pool: id === "worker-text" ? "text" : "",
        ownTaskTypes: ["slugify", "word-count", "word-total", "word-count-all"],
        // word-count declares isolation "thread".
        threadTaskTypes: ["word-count"],
      })),
    );

    // Its metrics name the pool, so that a dashboard sums each pool's workers.
    const metricsOf = async (key: string) =>
      (await fetch(`http://127.0.0.1:${pipeline.services.get(key)!.opsPort}/metrics`)).text();
    expect(await metricsOf("worker-text")).toMatch(/^tm_worker_in_flight\{[^}]*pool="text"[^}]*\} /m);
    expect(await metricsOf("worker")).toMatch(/^tm_worker_in_flight\{[^}]*pool="default"[^}]*\} /m);

    // A type nobody listed is still refused at the gateway, which names the ones it runs.
    const refused = await pipeline.client.submitTask({ type: "resize", payload: {} }).catch((e) => e as ConnectError);
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.InvalidArgument);
    expect((refused as ConnectError).rawMessage).toBe(
      'type: unknown task type "resize" (known: echo, sleep, checksum, flaky, fail, slugify, word-count, word-total, word-count-all)',
    );
  });

  test("a task that depends on others runs once they SUCCEEDED; one whose dependency FAILED is CANCELLED, naming it", async () => {
    const { taskId: first } = await pipeline.client.submitTask({ type: "sleep", payload: { ms: 400 } });
    // With taskctl, as an operator would chain it.
    let stdout = "";
    const io: Io = { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: () => true }, env: {} };
    const args = ["submit", "echo", "--payload", '{"after":"sleep"}', "--depends-on", first, "--json"];
    expect(await run([...args, "--addr", pipeline.gatewayUrl], io)).toBe(0);
    const { taskId: second } = JSON.parse(stdout) as { taskId: string };
    const updates = await collectStream(pipeline.client, second);
    expect(updates.at(-1)?.status?.state).toBe(TaskState.SUCCEEDED);
    // It was released into the pipeline only after its dependency had succeeded (their histories say when).
    await waitFor("both histories complete", async () =>
      (await readHistory(pipeline.redisClient, second)).some((e) => e.action === "succeeded"),
    );
    const when = async (id: string, action: string) =>
      Date.parse((await readHistory(pipeline.redisClient, id)).find((e) => e.action === action)?.at ?? "");
    expect(await when(second, "released")).toBeGreaterThanOrEqual(await when(first, "succeeded"));
    expect((await readHistory(pipeline.redisClient, second)).map((e) => e.action).slice(0, 3)).toEqual([
      "submitted",
      "released",
      "ingested",
    ]);

    // A dependency that fails (one attempt) cancels the task waiting for it, which never runs.
    const { taskId: failing } = await pipeline.client.submitTask({ type: "fail", payload: {}, maxAttempts: 1 });
    const { taskId: waiting } = await pipeline.client.submitTask({ type: "echo", payload: {}, dependsOn: [failing] });
    const last = (await collectStream(pipeline.client, waiting)).at(-1)?.status;
    expect(last?.state).toBe(TaskState.CANCELLED);
    expect((await pipeline.client.getTask({ taskId: failing })).task?.status?.state).toBe(TaskState.FAILED);
    await waitFor("the cancel in the history", async () =>
      (await readHistory(pipeline.redisClient, waiting)).some((e) => e.action === "cancelled"),
    );
    const cancelled = (await readHistory(pipeline.redisClient, waiting)).find((e) => e.action === "cancelled");
    expect(cancelled?.detail).toMatchObject({ reason: `dependency ${failing} ended FAILED` });
    expect((await readHistory(pipeline.redisClient, waiting)).map((e) => e.action)).not.toContain("ingested");
  });

  test("taskctl submit-batch sends a graph across calls: each task runs after the tasks it names", async () => {
    // Four tasks, two per call: the second call names the first call's root by its id, and its own first task by
    // its place in the call.
    const file = join(mkdtempSync(join(tmpdir(), "tm-graph-")), "graph.jsonl");
    writeFileSync(
      file,
      [
        { type: "sleep", payload: { ms: 300 } },
        { type: "echo", payload: { branch: "left" }, dependsOnBatchItems: [0] },
        { type: "echo", payload: { branch: "right" }, dependsOnBatchItems: [0] },
        { type: "echo", payload: { join: true }, dependsOnBatchItems: [1, 2] },
      ]
        .map((task) => JSON.stringify(task))
        .join("\n"),
    );
    let stdout = "";
    const io: Io = { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: () => true }, env: {} };
    expect(await run(["submit-batch", file, "--batch-size", "2", "--addr", pipeline.gatewayUrl], io)).toBe(0);
    const [root, left, right, joined] = stdout.trim().split("\n") as [string, string, string, string];
    expect((await pipeline.client.getTask({ taskId: joined })).task?.dependsOn).toEqual([left, right]);
    expect((await collectStream(pipeline.client, joined)).at(-1)?.status?.state).toBe(TaskState.SUCCEEDED);
    const at = async (id: string, action: string) => {
      await waitFor(`${action} in the history`, async () =>
        (await readHistory(pipeline.redisClient, id)).some((e) => e.action === action),
      );
      return Date.parse((await readHistory(pipeline.redisClient, id)).find((e) => e.action === action)?.at ?? "");
    };
    for (const branch of [left, right]) {
      expect(await at(branch, "released")).toBeGreaterThanOrEqual(await at(root, "succeeded"));
      expect(await at(joined, "released")).toBeGreaterThanOrEqual(await at(branch, "succeeded"));
    }
    // taskctl graph shows it from the root: the join under each branch, in full once.
    stdout = "";
    expect(await run(["graph", root, "--addr", pipeline.gatewayUrl], io)).toBe(0);
    const tree = stdout.trim().split("\n");
    expect(tree[0]).toBe(`${root}  sleep  SUCCEEDED`);
    expect(tree).toContain(`│  └─ ${joined}  echo  SUCCEEDED`);
    expect(tree).toContain(`   └─ ${joined}  (above)`);
    expect(tree.filter((line) => /^[├└]─ /.test(line)).sort()).toEqual(
      [`├─ ${left}  echo  SUCCEEDED`, `└─ ${right}  echo  SUCCEEDED`].sort(),
    );
  });

  test("a graph in one SubmitTasks call: word-total adds up the word counts of the tasks it waited for", async () => {
    // Two word-counts (pool "text") and the total (the default pool) that reads their results (ctx.dependencies()).
    const { outcomes } = await pipeline.client.submitTasks({
      tasks: [
        { type: "word-count", payload: { text: "one two three" } },
        { type: "word-count", payload: { text: "four five" } },
        { type: "word-total", dependsOnBatchItems: [0, 1] },
      ],
    });
    const ids = outcomes.map((o) => (o.outcome.case === "accepted" ? o.outcome.value.taskId : ""));
    expect(ids.every((id) => id !== "")).toBe(true);
    const total = ids[2] as string;
    expect((await collectStream(pipeline.client, total)).at(-1)?.status?.state).toBe(TaskState.SUCCEEDED);
    const stored = await (await fetch(`${pipeline.resultStoreUrl}/results/${total}`)).json();
    expect(stored).toMatchObject({ type: "word-total", output: { words: 5, parts: 2 } });
  });

  test("a handler's child tasks (ctx.submitTask): a fan-out and its fan-in, submitted once across the parent's attempts, linked to it", async () => {
    // word-count-all submits a word-count per text and a word-total waiting for them, then fails its first attempt.
    const texts = ["one two", "three four five"];
    const { taskId } = await pipeline.client.submitTask({
      type: "word-count-all",
      payload: { texts, failFirst: true },
      priority: Priority.LOW,
    });
    const last = (await collectStream(pipeline.client, taskId)).at(-1)?.status;
    expect(last).toMatchObject({ state: TaskState.SUCCEEDED, attempt: 2 });
    const parent = (await (await fetch(`${pipeline.resultStoreUrl}/results/${taskId}`)).json()) as {
      output: { parts: string[]; total: string; found: number };
    };
    const { parts, total, found } = parent.output;
    // The retry got back the three children the first attempt had submitted, and made none.
    expect(found).toBe(3);
    const children = await tasksWithParent(taskId);
    expect(children.sort()).toEqual([...parts, total].sort());

    // The fan-in waited for both parts and added up their words.
    expect((await collectStream(pipeline.client, total)).at(-1)?.status?.state).toBe(TaskState.SUCCEEDED);
    const sum = (await (await fetch(`${pipeline.resultStoreUrl}/results/${total}`)).json()) as { output: unknown };
    expect(sum.output).toEqual({ words: 5, parts: 2 });

    // The parent lists its children; each child links its parent and took its priority.
    const { task: parentTask } = await pipeline.client.getTask({ taskId });
    expect(parentTask).toMatchObject({ parentTaskId: "", childrenTotal: 3 });
    expect(new Set(parentTask?.children)).toEqual(new Set([...parts, total]));
    for (const id of [...parts, total]) {
      const { task } = await pipeline.client.getTask({ taskId: id });
      expect(task).toMatchObject({ parentTaskId: taskId, priority: Priority.LOW });
    }
  });

  test("a concurrency key runs its tasks one at a time, oldest first, while another key's task goes past its backlog", async () => {
    const { changes, subscriber } = await statusChanges();
    try {
      const key = `tenant-${crypto.randomUUID()}`;
      const backlog: string[] = [];
      for (let i = 0; i < 4; i++) {
        const request = { type: "sleep", payload: { ms: 1_000 }, concurrencyKey: key, concurrencyLimit: 1 };
        backlog.push((await pipeline.client.submitTask(request)).taskId);
      }
      // The first holds the key's one place until it ends: the others wait PENDING, and GetTask says why.
      const waiting = (await pipeline.client.getTask({ taskId: backlog[3]! })).task;
      expect(waiting).toMatchObject({ concurrencyKey: key, concurrencyLimit: 1, concurrencyWaiting: true });
      expect(waiting?.status?.state).toBe(TaskState.PENDING);
      expect((await pipeline.client.cancelTask({ taskId: backlog[3]!, reason: "not needed" })).status?.state).toBe(
        TaskState.CANCELLED,
      );

      const other = await pipeline.client.submitTask({
        type: "echo",
        payload: {},
        concurrencyKey: `${key}-other`,
        concurrencyLimit: 1,
      });
      expect(stateNames(await collectStream(pipeline.client, other.taskId)).at(-1)).toBe("SUCCEEDED");
      for (const taskId of backlog.slice(0, 3)) {
        expect(stateNames(await collectStream(pipeline.client, taskId)).at(-1)).toBe("SUCCEEDED");
      }

      // In the pipeline (ingested, scheduled or running) one at a time, in the order they were submitted.
      const { most, started } = inPipeline(changes, backlog);
      expect(most).toBe(1);
      expect(started).toEqual(backlog.slice(0, 3));
      // The other key's task did not wait for this key's backlog to drain.
      const at = (taskId: string, state: string) => changes.findIndex((c) => c.taskId === taskId && c.state === state);
      expect(at(other.taskId, "SUCCEEDED")).toBeLessThan(at(backlog[2]!, "SUCCEEDED"));
      // The cancelled one never ran, and took no place.
      expect(changes.filter((c) => c.taskId === backlog[3]).map((c) => c.state)).toEqual(["PENDING", "CANCELLED"]);
    } finally {
      subscriber.disconnect();
    }
  });

  test("fairness keys: a tenant's task starts within its turns, not behind another tenant's whole backlog", async () => {
    const { changes, subscriber } = await statusChanges();
    try {
      // Named so that A's key sorts first: on a tie of turns, the lower key goes first.
      const run = crypto.randomUUID();
      const [tenantA, tenantB] = [`a-${run}`, `b-${run}`];
      const sleep = (key: string) => ({ type: "sleep", payload: { ms: 300 }, fairnessKey: key });
      const backlog: string[] = [];
      for (let i = 0; i < 8; i++) backlog.push((await pipeline.client.submitTask(sleep(tenantA))).taskId);
      const late = [
        (await pipeline.client.submitTask(sleep(tenantB))).taskId,
        (await pipeline.client.submitTask(sleep(tenantB))).taskId,
      ];
      const waiting = (await pipeline.client.getTask({ taskId: late[1]! })).task;
      expect(waiting).toMatchObject({ fairnessKey: tenantB, fairnessWeight: 1, fairnessWaiting: true });
      expect(waiting?.status?.state).toBe(TaskState.PENDING);
      for (const taskId of [...backlog, ...late]) {
        expect(stateNames(await collectStream(pipeline.client, taskId)).at(-1)).toBe("SUCCEEDED");
      }

      const { most, started } = inPipeline(changes, [...backlog, ...late]);
      // At most the window in the pipeline. The places go A, A (the window), then B, A, B, A, A...: B's first task is
      // let in third and its second fifth. Two let in on ends close together may start in either order, hence the
      // bounds; first in, first out would have started B's tasks ninth and tenth.
      expect(most).toBeLessThanOrEqual(2);
      expect(started).toHaveLength(10);
      expect(started.indexOf(late[0]!)).toBeLessThanOrEqual(3);
      expect(started.indexOf(late[1]!)).toBeLessThanOrEqual(5);
    } finally {
      subscriber.disconnect();
    }
  });

  test("a task submitted to one gateway is streamed to completion from another", async () => {
    const second = await pipeline.spawn("gateway", {}, "gateway-2");
    const { createTaskClient } = await import("@tm/proto");
    const other = createTaskClient({ baseUrl: `http://127.0.0.1:${second.port}` });
    const { taskId } = await pipeline.client.submitTask({ type: "sleep", payload: { ms: 300 } });
    const updates = await collectStream(other, taskId);
    expect(stateNames(updates).at(-1)).toBe("SUCCEEDED");
    await second.process.stop();
  });

  test("cancelling a queued task and a running task", async () => {
    // Two slots: fill both with long sleeps so a third task waits in the queue.
    const running = await Promise.all(
      [0, 1].map(() => pipeline.client.submitTask({ type: "sleep", payload: { ms: 20_000 }, priority: Priority.HIGH })),
    );
    await Promise.all(
      running.map(({ taskId }) =>
        waitFor(
          "RUNNING",
          async () => (await pipeline.client.getTask({ taskId })).task?.status?.state === TaskState.RUNNING,
        ),
      ),
    );
    const queued = await pipeline.client.submitTask({ type: "echo", payload: { x: 1 }, priority: Priority.LOW });
    await waitFor("queued task SCHEDULED", async () => {
      const state = (await pipeline.client.getTask({ taskId: queued.taskId })).task?.status?.state;
      return state === TaskState.SCHEDULED;
    });
    const cancelQueued = await pipeline.client.cancelTask({ taskId: queued.taskId, reason: "no longer needed" });
    expect(cancelQueued.status?.state).toBe(TaskState.CANCELLED);

    const started = Date.now();
    for (const { taskId } of running) {
      const stream = collectStream(pipeline.client, taskId);
      const { status } = await pipeline.client.cancelTask({ taskId });
      expect(status?.state).toBe(TaskState.CANCELLED);
      expect(stateNames(await stream).at(-1)).toBe("CANCELLED");
    }
    // The running handlers were aborted: the slots free up long before the 20 s sleeps would end.
    const { taskId: after } = await pipeline.client.submitTask({ type: "echo", payload: {}, priority: Priority.HIGH });
    expect(stateNames(await collectStream(pipeline.client, after)).at(-1)).toBe("SUCCEEDED");
    expect(Date.now() - started).toBeLessThan(15_000);
    // Cancelled tasks never get a result, and a second cancel is refused.
    for (const taskId of [queued.taskId, ...running.map((r) => r.taskId)]) {
      expect((await fetch(`${pipeline.resultStoreUrl}/results/${taskId}`)).status).toBe(404);
    }
    const again = await pipeline.client.cancelTask({ taskId: queued.taskId }).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(ConnectError);
    expect((again as ConnectError).code).toBe(Code.FailedPrecondition);
  });

  test("bad input at the boundaries gets the contract's errors and every service keeps running", async () => {
    const unknownType = await pipeline.client.submitTask({ type: "nope", payload: {} }).catch((e: unknown) => e);
    expect((unknownType as ConnectError).code).toBe(Code.InvalidArgument);
    expect((unknownType as ConnectError).rawMessage).toMatch(/type/);
    const badId = await pipeline.client.getTask({ taskId: "not-a-uuid" }).catch((e: unknown) => e);
    expect((badId as ConnectError).code).toBe(Code.InvalidArgument);
    const unknownId = await pipeline.client.getTask({ taskId: crypto.randomUUID() }).catch((e: unknown) => e);
    expect((unknownId as ConnectError).code).toBe(Code.NotFound);
    const badPriority = await pipeline.client
      .submitTask({ type: "echo", payload: {}, priority: 42 as Priority })
      .catch((e: unknown) => e);
    expect((badPriority as ConnectError).code).toBe(Code.InvalidArgument);
    const huge = await pipeline.client
      .submitTask({ type: "echo", payload: { blob: "x".repeat(200_000) } })
      .catch((e: unknown) => e);
    expect((huge as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((huge as ConnectError).rawMessage).toMatch(/^payload: /);

    const malformed = await fetch(`${pipeline.enricherUrl}/enrich`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(malformed.status).toBe(400);
    expect(JSON.stringify(await malformed.json())).toMatch(/JSON/i);
    expect((await fetch(`${pipeline.resultStoreUrl}/results/${crypto.randomUUID()}`)).status).toBe(404);
    expect((await fetch(`${pipeline.resultStoreUrl}/results/nope`)).status).toBe(400);

    for (const [name, service] of pipeline.services) {
      if (name === "gateway-2") continue;
      expect(service.process.running, `${name} is running`).toBe(true);
      expect((await fetch(`http://127.0.0.1:${service.opsPort}/readyz`)).status, `${name} ready`).toBe(200);
    }
  });
});

/** The ids of the task records that name `parentId` as their parent: every child made, however often submitted. */
async function tasksWithParent(parentId: string): Promise<string[]> {
  const found: string[] = [];
  for await (const keys of pipeline.redisClient.scanStream({ match: "task:*", count: 1_000 })) {
    for (const key of keys as string[]) {
      if ((await pipeline.redisClient.hget(key, "parentTaskId")) === parentId) found.push(key.slice("task:".length));
    }
  }
  return found;
}
