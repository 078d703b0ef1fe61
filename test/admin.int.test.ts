/**
 * AdminService end to end against the whole pipeline (the worker and the enricher, which it stops, each its own process,
 * the rest in one combined process): queue stats show a backlog while the worker is down and
 * drain when it returns; ListTasks filters and paginates; GetTaskHistory lists each stage in order; a task
 * dead-lettered by ingest (enricher down) is listed with its reason and history and, once the enricher is back,
 * replayed to SUCCEEDED with one result and an audit entry; bad input is INVALID_ARGUMENT naming the field.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type AdminClient,
  type ConsumerStats,
  createAdminClient,
  Priority,
  ReplayResult,
  RequeueResult,
  TaskState,
} from "@tm/proto";
import { extendTypeBackoff, Keys, readResult } from "@tm/store";
import { REPO_ROOT, waitFor } from "@tm/testkit";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { collectStream, type Pipeline, startPipeline, stateNames } from "./support/pipeline.js";

let pipeline: Pipeline;
let admin: AdminClient;

beforeAll(async () => {
  // A day's retention instead of the default week: every service writing a task's records applies it (checked below);
  // half a day for a task that SUCCEEDED.
  // Workers report every 200 ms (not 5 s) for `taskctl workers`.
  // Workers read pauses, quiet marks and run-time limits every 200 ms here (1 s by default): the tests wait on them.
  pipeline = await startPipeline({
    // Stopped and started again, and the worker's /metrics read: their own processes.
    ownProcess: ["worker", "enricher"],
    env: {
      TASK_RETENTION_SECONDS: "86400",
      TASK_SUCCEEDED_RETENTION_SECONDS: "43200",
      WORKER_REPORT_INTERVAL_MS: "200",
      WORKER_PAUSE_POLL_MS: "200",
    },
    // A window of two for tasks with a fairness key (taskctl fairness): a few tasks fill it. Tasks without a key, as
    // every other test's, do not pass through it.
    perService: { gateway: { GATEWAY_FAIRNESS_WINDOW: "2" } },
  });
  admin = createAdminClient({ baseUrl: pipeline.gatewayUrl });
}, 90_000);
afterAll(async () => {
  await pipeline?.dispose();
});

async function consumer(name: string): Promise<ConsumerStats> {
  const stats = await admin.getQueueStats({});
  const found = stats.consumers.find((c) => c.name === name);
  if (!found) throw new Error(`no consumer ${name} in ${stats.consumers.map((c) => c.name).join(", ")}`);
  return found;
}

/** Runs the built taskctl against the pipeline's gateway. */
function taskctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const cli = join(REPO_ROOT, "services", "client", "dist", "bundle", "cli.js");
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args, "--addr", pipeline.gatewayUrl], (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

async function expectInvalid(call: Promise<unknown>, field: string): Promise<void> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  expect((error as ConnectError).code).toBe(Code.InvalidArgument);
  expect((error as ConnectError).rawMessage).toMatch(new RegExp(`^${field.replace(".", "\\.")}:`));
}

describe("AdminService", () => {
  test("queue stats show the backlog while the worker is down and drain to 0 when it returns", async () => {
    const worker = pipeline.services.get("worker")!;
    await worker.process.stop();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push((await pipeline.client.submitTask({ type: "echo", payload: { i }, priority: Priority.HIGH })).taskId);
    }
    // The notifier applies SCHEDULED asynchronously, so the state count is part of the condition.
    await waitFor("4 tasks waiting on tasks.worker.high, counted as SCHEDULED", async () => {
      const stats = await admin.getQueueStats({});
      const high = stats.consumers.find((c) => c.name === "worker-tasks-worker-high");
      const scheduled = stats.tasksByState.find((s) => s.state === TaskState.SCHEDULED);
      return !!high && high.pending >= 4n && high.oldestUnackedAgeMs > 0n && Number(scheduled?.count) >= 4;
    });
    const high = await consumer("worker-tasks-worker-high");
    expect(high).toMatchObject({ stream: "TASKS", subject: "tasks.worker.high", ackPending: 0n });
    // A few dozen messages of the stream's 1,000,000: far from being discarded, but counted.
    expect(high.backlogLimitRatio).toBeGreaterThan(0);
    expect(high.backlogLimitRatio).toBeLessThan(0.001);

    worker.process.start();
    await worker.ready();
    await waitFor(
      "the worker queue to drain",
      async () => {
        const c = await consumer("worker-tasks-worker-high");
        return c.pending === 0n && c.ackPending === 0n;
      },
      { timeoutMs: 30_000 },
    );
    for (const taskId of ids) expect(stateNames(await collectStream(pipeline.client, taskId)).at(-1)).toBe("SUCCEEDED");
    expect(await consumer("worker-tasks-worker-high")).toMatchObject({ oldestUnackedAgeMs: 0n, backlogLimitRatio: 0 });
    // The deadletter service's durable on ADVISORIES is listed too: no crash advisory waits to be handled.
    expect(await consumer("deadletter-advisories")).toMatchObject({ stream: "ADVISORIES", subject: "", pending: 0n });
  });

  test("ListTasks filters by state, type, priority, time range and query, and paginates without gaps", async () => {
    const before = Date.now() - 1;
    const batch = `batch-${Date.now()}`;
    const submitted = [];
    for (const [type, priority, payload] of [
      ["echo", Priority.LOW, {}],
      ["checksum", Priority.HIGH, { data: "x", rounds: 1 }],
      ["echo", Priority.MEDIUM, {}],
      ["fail", Priority.HIGH, {}],
      ["echo", Priority.HIGH, {}],
    ] as const) {
      const { taskId } = await pipeline.client.submitTask({ type, priority, payload, metadata: { batch, kind: type } });
      submitted.push({ taskId, type, priority });
    }
    for (const { taskId } of submitted) await collectStream(pipeline.client, taskId);
    const after = Date.now() + 1;
    const range = { createdAfter: timestampFromMs(before), createdBefore: timestampFromMs(after) };

    const all = await admin.listTasks({ ...range, pageSize: 500 });
    expect(all.tasks.map((t) => t.taskId)).toEqual(submitted.map((s) => s.taskId).reverse());
    expect(all.nextPageToken).toBe("");

    const failed = await admin.listTasks({ ...range, state: TaskState.FAILED });
    expect(failed.tasks.map((t) => t.taskId)).toEqual([submitted[3]!.taskId]);
    const echoes = await admin.listTasks({ ...range, type: "echo", priority: Priority.HIGH });
    expect(echoes.tasks.map((t) => t.taskId)).toEqual([submitted[4]!.taskId]);
    const byQuery = await admin.listTasks({ query: batch.toUpperCase(), pageSize: 500 });
    expect(byQuery.tasks).toHaveLength(5);
    const byPrefix = await admin.listTasks({ query: submitted[1]!.taskId.slice(0, 8) });
    expect(byPrefix.tasks.map((t) => t.taskId)).toContain(submitted[1]!.taskId);

    // Every task ever submitted in this file, two per page: the same list as one big page.
    const everything = await admin.listTasks({ pageSize: 500 });
    const paged: string[] = [];
    let pageToken = "";
    do {
      const page = await admin.listTasks({ pageSize: 2, pageToken });
      expect(page.tasks.length).toBeLessThanOrEqual(2);
      paged.push(...page.tasks.map((t) => t.taskId));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(paged).toEqual(everything.tasks.map((t) => t.taskId));
    expect(new Set(paged).size).toBe(paged.length);
  });

  test("GetTaskHistory lists each stage's events in order", async () => {
    const { taskId } = await pipeline.client.submitTask({ type: "echo", payload: { hi: 1 } });
    expect(stateNames(await collectStream(pipeline.client, taskId)).at(-1)).toBe("SUCCEEDED");
    let actions: string[] = [];
    const stages = [
      "gateway:submitted",
      "ingest:ingested",
      "scheduler:scheduled",
      "worker:succeeded",
      "result-store:result_stored",
    ];
    // Audit is asynchronous: wait until every stage's event has been recorded.
    await waitFor("every stage's audit event", async () => {
      const { events } = await admin.getTaskHistory({ taskId });
      actions = events.map((e) => `${e.service}:${e.action}`);
      return stages.every((stage) => actions.includes(stage));
    });
    // Each stage audits right after forwarding the task, so two adjacent stages' events may swap places; stages
    // a full hop apart may not.
    const position = (action: string) => {
      const index = actions.indexOf(action);
      expect(index, `${action} in ${actions.join(", ")}`).toBeGreaterThanOrEqual(0);
      return index;
    };
    expect(position("gateway:submitted")).toBeLessThan(position("scheduler:scheduled"));
    expect(position("ingest:ingested")).toBeLessThan(position("worker:succeeded"));
    expect(position("scheduler:scheduled")).toBeLessThan(position("result-store:result_stored"));
  });

  test("a task dead-lettered while the enricher is down is listed, then replayed to SUCCEEDED once", async () => {
    const enricher = pipeline.services.get("enricher")!;
    await enricher.process.stop();
    const { taskId } = await pipeline.client.submitTask({ type: "echo", payload: { replay: true } });
    // A task waiting for it: cancelled by its failure, revived by its replay.
    const { taskId: after } = await pipeline.client.submitTask({ type: "echo", dependsOn: [taskId] });
    expect(stateNames(await collectStream(pipeline.client, taskId)).at(-1)).toBe("FAILED");
    expect(stateNames(await collectStream(pipeline.client, after)).at(-1)).toBe("CANCELLED");

    let listed = await admin.listDeadLetters({ filter: { taskId } });
    await waitFor("the dead letter", async () => {
      listed = await admin.listDeadLetters({ filter: { taskId } });
      return listed.deadLetters.length > 0;
    });
    const [letter] = listed.deadLetters;
    expect(letter).toMatchObject({ taskId, subject: "tasks.ingest", reason: "exhausted", attempts: 5 });
    expect(letter!.error).not.toBe("");
    // The letter carries the history as it was when it died (audit is asynchronous, so maybe not all of it yet):
    // a prefix of the task's history.
    const full = (await admin.getTaskHistory({ taskId })).events.map((e) => `${e.service}:${e.action}`);
    expect(letter!.history.map((e) => `${e.service}:${e.action}`)).toEqual(full.slice(0, letter!.history.length));

    enricher.process.start();
    await enricher.ready();
    const stream = collectStream(pipeline.client, taskId);
    const replay = await admin.replayDeadLetters({ ids: [letter!.id] });
    expect(replay.outcomes).toEqual([
      expect.objectContaining({
        id: letter!.id,
        result: ReplayResult.REPLAYED,
        taskId,
        generation: 1,
        revivedDependents: [after],
      }),
    ]);
    // The stream opened before the replay ends at the old FAILED; a new one follows the new generation.
    await stream;
    await waitFor(
      "the replayed task to succeed and its result to be stored",
      async () => {
        const { task } = await pipeline.client.getTask({ taskId });
        return (
          task?.status?.state === TaskState.SUCCEEDED && (await readResult(pipeline.redisClient, taskId)) !== undefined
        );
      },
      { timeoutMs: 45_000 },
    );
    expect(await readResult(pipeline.redisClient, taskId)).toMatchObject({ generation: 1, output: { replay: true } });
    // The revived task ran after it, as generation 1, once.
    expect(stateNames(await collectStream(pipeline.client, after)).at(-1)).toBe("SUCCEEDED");
    await waitFor(
      "the revived task's result",
      async () => (await readResult(pipeline.redisClient, after)) !== undefined,
    );
    expect(await readResult(pipeline.redisClient, after)).toMatchObject({ generation: 1 });
    const historyOf = async (id: string) => (await admin.getTaskHistory({ taskId: id })).events.map((e) => e.action);
    await waitFor("the revived task's succeeded audit event", async () =>
      (await historyOf(after)).includes("succeeded"),
    );
    const afterHistory = await historyOf(after);
    expect(afterHistory.filter((action) => action === "revived")).toHaveLength(1);
    expect(afterHistory.filter((action) => action === "succeeded")).toHaveLength(1);

    let replayed: { detail?: unknown } | undefined;
    await waitFor("the replayed audit event", async () => {
      replayed = (await admin.getTaskHistory({ taskId })).events.find((e) => e.action === "replayed");
      return replayed !== undefined;
    });
    expect(replayed?.detail).toMatchObject({ deadLetterId: letter!.id, generation: 1 });
    // Its new generation was acknowledged: nothing left for the requeue sweeper, and nothing requeued.
    expect(await pipeline.redisClient.zscore(Keys.unqueued, taskId)).toBeNull();
    const history = (await admin.getTaskHistory({ taskId })).events.map((e) => e.action);
    expect(history).not.toContain("requeued");
    expect((await admin.listDeadLetters({ filter: { taskId } })).deadLetters).toHaveLength(0);
    const again = await admin.replayDeadLetters({ ids: [letter!.id] });
    expect(again.outcomes[0]?.result).toBe(ReplayResult.NOT_FOUND);
  });

  test("a task whose queued message was discarded is requeued under its id and finishes once", async () => {
    const worker = pipeline.services.get("worker")!;
    await worker.process.stop();
    const { taskId } = await pipeline.client.submitTask({
      type: "echo",
      payload: { requeue: true },
      priority: Priority.HIGH,
    });
    const nc = await connect({ servers: pipeline.nats.url });
    try {
      // What a full stream does to the head of a backlog (discard old): the waiting message is deleted, unhandled.
      const jsm = await nc.jetstreamManager();
      let seq = 0;
      await waitFor("the task's message on tasks.worker.high and the task SCHEDULED", async () => {
        const { state } = await jsm.streams.info("TASKS");
        for (let s = state.first_seq; s <= state.last_seq && seq === 0; s++) {
          const stored = await jsm.streams.getMessage("TASKS", { seq: s }).catch(() => undefined);
          if (stored?.subject === "tasks.worker.high" && stored.json<{ taskId: string }>().taskId === taskId) seq = s;
        }
        const { task } = await pipeline.client.getTask({ taskId });
        return seq > 0 && task?.status?.state === TaskState.SCHEDULED;
      });
      expect(await jsm.streams.deleteMessage("TASKS", seq)).toBe(true);
    } finally {
      await nc.close();
    }
    worker.process.start();
    await worker.ready();
    await waitFor("the worker's queue empty: nothing left to run the task", async () => {
      const high = await consumer("worker-tasks-worker-high");
      return high.pending === 0n && high.ackPending === 0n;
    });
    // Listed as stalled (unfinished, unchanged since the time asked), by the RPC and by taskctl.
    const stalledIds = async (stalledForSeconds: number) =>
      (await admin.listTasks({ stalledForSeconds })).tasks.map((task) => task.taskId);
    expect(await stalledIds(0)).toContain(taskId);
    expect(await stalledIds(3_600)).not.toContain(taskId);
    const listed = await taskctl("ls", "--stalled-for", "0", "--json");
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { tasks: { taskId: string }[] }).tasks.map((t) => t.taskId)).toContain(taskId);
    // Whoever follows the task keeps following it through the requeue, to the end.
    const followed = collectStream(pipeline.client, taskId, 45_000);

    // Not stalled long enough by the default (ten minutes) nor by a minute: refused, saying why (taskctl exits 1).
    const early = await admin.requeueTasks({ taskIds: [taskId], stalledForSeconds: 60 });
    expect(early.outcomes).toEqual([
      expect.objectContaining({
        taskId,
        result: RequeueResult.FAILED_PRECONDITION,
        previousState: TaskState.SCHEDULED,
        reason: expect.stringMatching(
          /^it is SCHEDULED and its status changed \d+ s ago; only tasks stalled for at least 60 s are requeued/,
        ),
      }),
    ]);
    const byDefault = await taskctl("requeue", taskId);
    expect(byDefault.code).toBe(1);
    expect(byDefault.stdout).toMatch(
      new RegExp(`^${taskId}\\s+scheduled\\s+failed_precondition\\s+it is SCHEDULED`, "m"),
    );
    expect(byDefault.stdout).toContain("only tasks stalled for at least 600 s are requeued");
    const unknown = crypto.randomUUID();
    const requeued = await admin.requeueTasks({ taskIds: [taskId, unknown], stalledForSeconds: 0 });
    expect(requeued.outcomes).toEqual([
      expect.objectContaining({
        taskId,
        result: RequeueResult.REQUEUED,
        generation: 1,
        previousState: TaskState.SCHEDULED,
      }),
      expect.objectContaining({ taskId: unknown, result: RequeueResult.NOT_FOUND }),
    ]);

    const states = stateNames(await followed);
    expect(states.slice(0, 2)).toEqual(["SCHEDULED", "PENDING"]);
    expect(states.at(-1)).toBe("SUCCEEDED");
    await waitFor("the result stored", async () => (await readResult(pipeline.redisClient, taskId)) !== undefined);
    expect(await readResult(pipeline.redisClient, taskId)).toMatchObject({ generation: 1, output: { requeue: true } });
    let history: string[] = [];
    await waitFor("the requeue and the new generation's run in the history", async () => {
      history = (await admin.getTaskHistory({ taskId })).events.map((e) => e.action);
      return history.includes("requeued_stalled") && history.includes("result_stored");
    });
    const requeueEvent = (await admin.getTaskHistory({ taskId })).events.find((e) => e.action === "requeued_stalled");
    expect(requeueEvent?.detail).toMatchObject({ generation: 1, previousState: "SCHEDULED" });
    expect(history.filter((action) => action === "result_stored")).toHaveLength(1);
    expect(await pipeline.redisClient.zscore(Keys.unqueued, taskId)).toBeNull();

    const again = await admin.requeueTasks({ taskIds: [taskId], stalledForSeconds: 0 });
    expect(again.outcomes).toEqual([
      expect.objectContaining({ result: RequeueResult.FAILED_PRECONDITION, reason: "it is SUCCEEDED" }),
    ]);
  });

  test("a task requeued while its message was only waiting runs once: the old generation's message is skipped", async () => {
    const worker = pipeline.services.get("worker")!;
    await worker.process.stop();
    const { taskId } = await pipeline.client.submitTask({
      type: "echo",
      payload: { once: true },
      priority: Priority.HIGH,
    });
    await waitFor("the task SCHEDULED, its message waiting for a worker", async () => {
      const { task } = await pipeline.client.getTask({ taskId });
      return task?.status?.state === TaskState.SCHEDULED;
    });
    const requeued = await admin.requeueTasks({ taskIds: [taskId], stalledForSeconds: 0 });
    expect(requeued.outcomes[0]).toMatchObject({ result: RequeueResult.REQUEUED, generation: 1 });
    await waitFor("generation 1 SCHEDULED too", async () => {
      const { task } = await pipeline.client.getTask({ taskId });
      return task?.status?.state === TaskState.SCHEDULED && (task.status.version ?? 0n) >= 100_000_000n;
    });
    worker.process.start();
    await worker.ready();
    let history: string[] = [];
    // result_stored (result-store) may be recorded before the worker's own "succeeded", which follows its result:
    // wait for all three.
    await waitFor("the task run once and the old message skipped", async () => {
      history = (await admin.getTaskHistory({ taskId })).events.map((e) => e.action);
      return ["result_stored", "succeeded", "skipped_superseded"].every((action) => history.includes(action));
    });
    expect(history.filter((action) => action === "succeeded")).toHaveLength(1);
    expect(history.filter((action) => action === "skipped_superseded")).toHaveLength(1);
    expect(await readResult(pipeline.redisClient, taskId)).toMatchObject({ generation: 1, output: { once: true } });
  });

  test("a dead letter that is not a task is not replayed, with a reason", async () => {
    const nc: NatsConnection = await connect({ servers: pipeline.nats.url });
    try {
      await nc.jetstream().publish("tasks.ingest", new TextEncoder().encode("not json"), { msgID: "garbage-1" });
    } finally {
      await nc.close();
    }
    let id = "";
    await waitFor("the invalid dead letter", async () => {
      const { deadLetters } = await admin.listDeadLetters({ filter: { reason: "invalid", subject: "tasks.ingest" } });
      id = deadLetters[0]?.id ?? "";
      return id !== "";
    });
    const { outcomes } = await admin.replayDeadLetters({ ids: [id, "TASKS:999999"] });
    expect(outcomes[0]).toMatchObject({ id, result: ReplayResult.FAILED_PRECONDITION });
    expect(outcomes[0]!.reason).toMatch(/not a task|failed validation/);
    expect(outcomes[1]).toMatchObject({ id: "TASKS:999999", result: ReplayResult.NOT_FOUND });
  });

  test("taskctl workers: the live worker and the task it runs, with its attempt and how long it has run", async () => {
    const { taskId } = await pipeline.client.submitTask({ type: "sleep", payload: { ms: 60_000 } });
    try {
      let listed = { code: -1, stdout: "", stderr: "" };
      await waitFor("the task listed as running", async () => {
        listed = await taskctl("workers");
        return listed.stdout.includes(taskId);
      });
      expect(listed.code, listed.stderr).toBe(0);
      const lines = listed.stdout.trim().split("\n");
      expect(lines[0]).toMatch(/^WORKER +STARTED +SEEN +RUNNING +QUEUED +PAUSED +STATE$/);
      expect(lines[1]).toMatch(/^\S+:\d+ +(just now|\d+[smh] ago) +(just now|\d+s ago) +1\/8 +0 +- +taking tasks$/);
      expect(lines.find((line) => line.startsWith(taskId))).toMatch(
        new RegExp(`^${taskId} +sleep +medium +1 +(<1s|\\d+s) +\\S+:\\d+$`),
      );
      const json = JSON.parse((await taskctl("workers", "--json")).stdout);
      expect(json.workers[0].running[0]).toMatchObject({
        taskId,
        type: "sleep",
        priority: "PRIORITY_MEDIUM",
        attempt: 1,
      });
    } finally {
      await pipeline.client.cancelTask({ taskId, reason: "test done" });
    }
  });

  test("taskctl workers quiet|resume: the worker takes no task while quiet, and the waiting one once resumed", async () => {
    const listedWorker = async () => JSON.parse((await taskctl("workers", "--json")).stdout).workers[0];
    const id: string = (await listedWorker()).id;
    const quiet = await taskctl("workers", "quiet", id);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stdout).toBe(
      `${id}: quiet (takes no new tasks from its next poll; what it holds buffered goes to the other workers)\n`,
    );
    try {
      await waitFor("the worker listed quiet", async () => /\squiet$/m.test((await taskctl("workers")).stdout));
      // The only worker is quiet: a task submitted now waits, queued for it.
      const { taskId } = await pipeline.client.submitTask({ type: "echo", payload: { quiet: true } });
      await waitFor("the task queued for a worker", async () => {
        const { task } = await pipeline.client.getTask({ taskId });
        return task?.status?.state === TaskState.SCHEDULED;
      });
      // Two more reports of the worker (its controls are read more often): it has still not taken the task.
      const seen = new Set([(await listedWorker()).seenAt]);
      await waitFor("two more reports", async () => seen.add((await listedWorker()).seenAt).size >= 3);
      expect((await pipeline.client.getTask({ taskId })).task?.status?.state).toBe(TaskState.SCHEDULED);
      expect((await taskctl("workers", "quiet", id)).stdout).toBe(`${id}: was quiet already\n`);
      // Named by its host alone (a pod's name): the one live worker there.
      const resumed = await taskctl("workers", "resume", id.slice(0, id.lastIndexOf(":")));
      expect(resumed.stdout).toBe(`${id}: resumed (takes tasks again)\n`);
      await waitFor("the waiting task run", async () => {
        const { task } = await pipeline.client.getTask({ taskId });
        return task?.status?.state === TaskState.SUCCEEDED;
      });
    } finally {
      await taskctl("workers", "resume", id);
    }
    const unknown = await taskctl("workers", "quiet", "nobody:1");
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('no live worker "nobody:1" (taskctl workers lists them)');
  });

  test("taskctl stats, ls, history and dlq (ls, replay, discard) with --json", async () => {
    // One process each: the ones that do not need another's output run at the same time (none changes what another
    // reads; the replay further down is refused).
    const [stats, ls, dlq, table, bad, unknown] = await Promise.all([
      taskctl("stats", "--json"),
      taskctl("ls", "--state", "succeeded", "--type", "echo", "--since", "1h", "--limit", "2", "--json"),
      taskctl("dlq", "ls", "--json"),
      taskctl("ls", "--limit", "3"),
      taskctl("ls", "--state", "done"),
      taskctl("history", "00000000-0000-4000-8000-000000000000"),
    ]);
    expect(stats.code, stats.stderr).toBe(0);
    expect(JSON.parse(stats.stdout).consumers.map((c: { name: string }) => c.name)).toContain("ingest-tasks-ingest");

    expect(ls.code, ls.stderr).toBe(0);
    const page = JSON.parse(ls.stdout) as {
      tasks: { taskId: string; status: { state: string } }[];
      nextPageToken: string;
    };
    expect(page.tasks).toHaveLength(2);
    expect(page.tasks.every((t) => t.status.state === "TASK_STATE_SUCCEEDED")).toBe(true);

    expect(dlq.code, dlq.stderr).toBe(0);
    const invalid = (JSON.parse(dlq.stdout).deadLetters as { id: string; reason: string }[]).find(
      (l) => l.reason === "invalid",
    );
    expect(invalid).toBeDefined();

    expect(table.stdout.split("\n")[0]).toMatch(
      /^ID\s+TYPE\s+PRIORITY\s+STATE\s+ATTEMPT\s+PROGRESS\s+CREATED\s+ERROR$/,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--state must be one of/);
    expect(unknown.code).toBe(3);

    const [next, history, replay] = await Promise.all([
      taskctl("ls", "--state", "succeeded", "--limit", "2", "--page-token", page.nextPageToken, "--json"),
      taskctl("history", page.tasks[0]!.taskId, "--json"),
      taskctl("dlq", "replay", invalid!.id, "--json"),
    ]);
    expect(next.code, next.stderr).toBe(0);
    expect(history.code, history.stderr).toBe(0);
    expect(JSON.parse(history.stdout).events.map((e: { action: string }) => e.action)).toContain("submitted");
    expect(replay.code).toBe(1);
    expect(JSON.parse(replay.stdout).outcomes[0].result).toBe("REPLAY_RESULT_FAILED_PRECONDITION");

    // Letters that cannot be replayed are discarded instead, chosen by reason: the invalid ones leave the list, the
    // others stay; discarding the same one again finds nothing.
    const before = (await admin.listDeadLetters({ pageSize: 500 })).deadLetters;
    const invalidIds = before.filter((letter) => letter.reason === "invalid").map((letter) => letter.id);
    const listed = await taskctl("dlq", "ls", "--reason", "invalid", "--json");
    expect(listed.code, listed.stderr).toBe(0);
    expect(
      JSON.parse(listed.stdout)
        .deadLetters.map((l: { id: string }) => l.id)
        .sort(),
    ).toEqual([...invalidIds].sort());
    const discard = await taskctl("dlq", "discard", "--all", "--reason", "invalid");
    expect(discard.code, discard.stderr).toBe(0);
    expect(discard.stdout).toMatch(new RegExp(`^${invalid!.id}\\s+\\S+\\s+discarded\\s*$`, "m"));
    const [again, after] = await Promise.all([
      taskctl("dlq", "discard", invalid!.id, "--json"),
      admin.listDeadLetters({ pageSize: 500 }),
    ]);
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout).outcomes[0]).toMatchObject({ result: "DISCARD_RESULT_NOT_FOUND" });
    // (Only the letters listed before are compared: a task of an earlier test may still be dead-lettered meanwhile.)
    const beforeIds = new Set(before.map((letter) => letter.id));
    expect(
      after.deadLetters
        .map((letter) => letter.id)
        .filter((id) => beforeIds.has(id))
        .sort(),
    ).toEqual(
      before
        .filter((letter) => letter.reason !== "invalid")
        .map((letter) => letter.id)
        .sort(),
    );
  });

  test("taskctl pause low: low tasks wait while high ones run; taskctl resume low: they run, but one past its --expires-after is CANCELLED unrun; taskctl concurrency: a key's task held by the pause, and the one waiting for its place", async () => {
    const worker = pipeline.services.get("worker")!;
    const gauge = async () => {
      const text = await (await fetch(`http://127.0.0.1:${worker.opsPort}/metrics`)).text();
      return /^tm_worker_queue_paused\{[^}]*priority="low"[^}]*\} (\d)/m.exec(text)?.[1];
    };
    const paused = await taskctl("pause", "low");
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toMatch(/^low: paused .*\npaused queues {2}low \(since (just now|\d+s ago)\)\n$/);
    await waitFor("the worker to see the pause", async () => (await gauge()) === "1", { timeoutMs: 10_000 });
    const stats = await taskctl("stats");
    expect(stats.stdout).toMatch(/^paused queues {2}low \(since (just now|\d+s ago)\)$/m);

    const low = (await pipeline.client.submitTask({ type: "echo", payload: { q: "low" }, priority: Priority.LOW }))
      .taskId;
    // One that is worthless if not started within a second (taskctl submit --expires-after).
    const expiring = await taskctl("submit", "echo", "--priority", "low", "--expires-after", "1s", "--json");
    expect(expiring.code, expiring.stderr).toBe(0);
    const { taskId: late } = JSON.parse(expiring.stdout) as { taskId: string };
    const high = (await pipeline.client.submitTask({ type: "echo", payload: { q: "high" }, priority: Priority.HIGH }))
      .taskId;
    await waitFor("the high task to succeed", async () => (await readResult(pipeline.redisClient, high)) !== undefined);
    // Queued for a worker, and no further.
    const state = async (taskId: string) => (await pipeline.client.getTask({ taskId })).task?.status?.state;
    await waitFor("the low tasks scheduled", async () => (await state(low)) === TaskState.SCHEDULED);
    await waitFor("the expiring task scheduled", async () => (await state(late)) === TaskState.SCHEDULED);
    expect(await readResult(pipeline.redisClient, low)).toBeUndefined();
    // Two low tasks of one concurrency key, limit 1: the first holds its place (in the pipeline, held by the pause),
    // the second waits PENDING for it. taskctl concurrency names both.
    const key = `tenant-${crypto.randomUUID().slice(0, 8)}`;
    const keyed: string[] = [];
    for (const n of [1, 2]) {
      const submitted = await taskctl(
        "submit",
        "echo",
        "--priority",
        "low",
        "--payload",
        `{"n":${n}}`,
        "--concurrency-key",
        key,
        "--concurrency-limit",
        "1",
        "--json",
      );
      expect(submitted.code, submitted.stderr).toBe(0);
      keyed.push((JSON.parse(submitted.stdout) as { taskId: string }).taskId);
    }
    const [holding, waiting] = keyed;
    const view = await taskctl("concurrency", key);
    expect(view.code, view.stderr).toBe(0);
    expect(view.stdout).toBe(
      `concurrency key ${key}: 1 in the pipeline, 1 waiting (the next is admitted under a limit of 1)\n` +
        `running  ${holding}\nwaiting  ${waiting}\n`,
    );
    expect(JSON.parse((await taskctl("concurrency", key, "--json")).stdout)).toEqual({
      running: [holding],
      runningTotal: 1,
      waiting: [waiting],
      waitingTotal: 1,
      nextLimit: 1,
    });
    // --owner is for a gateway isolating callers' tasks (GATEWAY_TASK_ISOLATION=caller); this one refuses it.
    const owned = await taskctl("concurrency", key, "--owner", "shop");
    expect(owned.code).toBe(2);
    expect(owned.stderr).toMatch(/^taskctl: rejected by the gateway: owner: applies only with GATEWAY_TASK_ISOLATION/);
    expect((await taskctl("concurrency")).code).toBe(2);
    const { task: lateTask } = await pipeline.client.getTask({ taskId: late });
    const expiresAt = timestampDate(lateTask!.createdAt!).getTime() + 1_000;
    await waitFor("the expiring task's second to pass", async () => Date.now() > expiresAt + 50);

    const resumed = await taskctl("resume", "low", "--json");
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ wasPaused: true });
    await waitFor("the low task to succeed", async () => (await readResult(pipeline.redisClient, low)) !== undefined);
    expect(await gauge()).toBe("0");
    // The expiring one was not run: CANCELLED, saying why, no result.
    await waitFor("the expiring task to end", async () => (await state(late)) === TaskState.CANCELLED);
    const shown = await taskctl("get", late);
    expect(shown.stdout).toMatch(/^reason {4}expired: not started by \S+ \(expires_after 1000 ms\)$/m);
    expect(shown.stdout).toMatch(/^expires {3}if not started 1.00 s after it was due$/m);
    expect(await readResult(pipeline.redisClient, late)).toBeUndefined();
    // The keyed tasks ran one after the other, and the key holds nothing any more.
    for (const taskId of keyed) {
      await waitFor("a keyed task to succeed", async () => (await state(taskId)) === TaskState.SUCCEEDED);
    }
    expect((await taskctl("concurrency", key)).stdout).toBe(
      `concurrency key ${key}: no task in the pipeline, none waiting\n`,
    );
  });

  test("taskctl fairness: low paused, a key's two tasks fill the sleep window, the rest wait, a newcomer key first; get and stats say so; resumed, all run and the window empties", async () => {
    const worker = pipeline.services.get("worker")!;
    const gauge = async () => {
      const text = await (await fetch(`http://127.0.0.1:${worker.opsPort}/metrics`)).text();
      return /^tm_worker_queue_paused\{[^}]*priority="low"[^}]*\} (\d)/m.exec(text)?.[1];
    };
    // Held by the pause, the window's tasks stay in the pipeline (SCHEDULED): their places stay taken.
    expect((await taskctl("pause", "low")).code).toBe(0);
    await waitFor("the worker to see the pause", async () => (await gauge()) === "1", { timeoutMs: 10_000 });
    const tenantA = `a-${crypto.randomUUID().slice(0, 8)}`;
    const tenantB = `b-${crypto.randomUUID().slice(0, 8)}`;
    const submit = async (...flags: string[]) => {
      const submitted = await taskctl("submit", "sleep", "--priority", "low", "--payload", '{"ms":50}', ...flags);
      expect(submitted.code, submitted.stderr).toBe(0);
      return submitted.stdout.trim();
    };
    const [a1, a2, a3, a4] = [
      await submit("--fairness-key", tenantA),
      await submit("--fairness-key", tenantA),
      await submit("--fairness-key", tenantA),
      await submit("--fairness-key", tenantA),
    ];
    const b1 = await submit("--fairness-key", tenantB, "--fairness-weight", "2");

    // A's first two took the places (its next start moved on to 2, the clock to 1); B, new, starts at the clock:
    // its turn comes before A's third, though A's came first.
    const view = await taskctl("fairness", "sleep");
    expect(view.code, view.stderr).toBe(0);
    const lines = view.stdout.split("\n");
    expect(lines[0]).toBe("fairness window of sleep: 2 of 2 places taken, 2 keys waiting");
    expect(lines[1]?.split(/ +/).slice(1).sort()).toEqual([a1, a2].sort());
    expect(lines.slice(2)).toEqual([
      "",
      expect.stringMatching(/^KEY {9}WAITING {2}NEXT START {2}WEIGHT$/),
      expect.stringMatching(new RegExp(`^${tenantB} +1 +1 +2$`)),
      expect.stringMatching(new RegExp(`^${tenantA} +2 +2 +1$`)),
      "the first key is served next; each task let in moves its key's next start on by 1 / its weight (clock 1)",
      "",
    ]);
    const json = JSON.parse((await taskctl("fairness", "sleep", "--json")).stdout);
    expect({ ...json, running: [...json.running].sort() }).toEqual({
      window: 2,
      running: [a1, a2].sort(),
      runningTotal: 2,
      keys: [
        { key: tenantB, waitingTotal: 1, nextStart: 1, nextWeight: 2 },
        { key: tenantA, waitingTotal: 2, nextStart: 2, nextWeight: 1 },
      ],
      keysTotal: 2,
      clock: 1,
    });
    const waitingB = await taskctl("get", b1);
    expect(waitingB.stdout).toMatch(/^state {5}PENDING$/m);
    expect(waitingB.stdout).toMatch(
      new RegExp(`^fairness {2}key ${tenantB}, weight 2 \\(waiting for its turn\\)$`, "m"),
    );
    expect((await taskctl("get", a1)).stdout).toMatch(new RegExp(`^fairness {2}key ${tenantA}, weight 1$`, "m"));
    expect((await taskctl("stats")).stdout).toMatch(
      /^waiting tasks {2}3 \(for their fairness key's turn in their type's window\)$/m,
    );
    // The type is the gateway's to check; none given is a usage error.
    const unknown = await taskctl("fairness", "nope");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^taskctl: rejected by the gateway: task_type: unknown task type "nope"/);
    expect((await taskctl("fairness")).code).toBe(2);

    // Resumed: each end lets the next in, until every task ran.
    expect((await taskctl("resume", "low")).code).toBe(0);
    const succeeded = async (taskId: string) =>
      (await pipeline.client.getTask({ taskId })).task?.status?.state === TaskState.SUCCEEDED;
    for (const taskId of [a1, a2, a3, a4, b1]) {
      await waitFor("a task with a fairness key to succeed", () => succeeded(taskId), { timeoutMs: 20_000 });
    }
    expect((await taskctl("fairness", "sleep")).stdout).toBe(
      "fairness window of sleep: 0 of 2 places taken, no key waiting\n",
    );
    expect((await taskctl("get", b1)).stdout).toMatch(new RegExp(`^fairness {2}key ${tenantB}, weight 2$`, "m"));
    expect((await taskctl("stats")).stdout).not.toContain("fairness key's turn");
  });

  test("taskctl submit --delay: the task waits PENDING, then runs once, its history submitted, released, ingested", async () => {
    const submitted = await taskctl("submit", "echo", "--payload", '{"later":true}', "--delay", "2s", "--json");
    expect(submitted.code, submitted.stderr).toBe(0);
    const { taskId } = JSON.parse(submitted.stdout) as { taskId: string };
    const { task } = await pipeline.client.getTask({ taskId });
    expect(task?.status?.state).toBe(TaskState.PENDING);
    expect(task?.runAt).toBeDefined();
    expect((await admin.getQueueStats({})).delayedTasks).toBeGreaterThanOrEqual(1n);

    const watched = await taskctl("watch", taskId);
    expect(watched.code, watched.stderr).toBe(0);
    const shown = await taskctl("get", taskId);
    expect(shown.stdout).toMatch(/^state {5}SUCCEEDED$/m);
    expect(shown.stdout).toMatch(/^runs at {3}\d{4}-\d{2}-\d{2}T[\d:.]+Z \(delayed\)$/m);
    const result = await readResult(pipeline.redisClient, taskId);
    expect(result).toMatchObject({ output: { later: true }, attempts: 1 });
    expect(Date.parse(result!.completedAt)).toBeGreaterThanOrEqual(timestampDate(task!.runAt!).getTime());

    let actions: string[] = [];
    await waitFor("the released and ingested audit events", async () => {
      actions = (await admin.getTaskHistory({ taskId })).events.map((e) => `${e.service}:${e.action}`);
      return actions.includes("ingest:ingested") && actions.includes("gateway:released");
    });
    expect(actions.indexOf("gateway:submitted")).toBeLessThan(actions.indexOf("gateway:released"));
    expect(actions.indexOf("gateway:released")).toBeLessThan(actions.indexOf("ingest:ingested"));
  });

  test("taskctl submit-batch: a file's tasks in SubmitTasks calls, each run to SUCCEEDED once with its own result", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tm-submit-batch-"));
    try {
      const file = join(dir, "tasks.jsonl");
      const lines = Array.from({ length: 24 }, (_, n) =>
        JSON.stringify({ type: "echo", payload: { n }, priority: n % 2 ? "PRIORITY_HIGH" : "PRIORITY_LOW" }),
      );
      writeFileSync(file, `${lines.join("\n")}\n`);
      const submitted = await taskctl("submit-batch", file, "--batch-size", "10", "--json");
      expect(submitted.code, submitted.stderr).toBe(0);
      expect(submitted.stderr).toContain("24 accepted");
      const outcomes = submitted.stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as { line: number; taskId: string });
      expect(outcomes.map((o) => o.line)).toEqual(Array.from({ length: 24 }, (_, n) => n + 1));
      const watched = await taskctl("watch", ...outcomes.map((o) => o.taskId));
      expect(watched.code, watched.stderr).toBe(0);
      for (const [n, { taskId }] of outcomes.entries()) {
        expect(await readResult(pipeline.redisClient, taskId), `line ${n + 1}`).toMatchObject({
          output: { n },
          attempts: 1,
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A 20 s sleep submitted with `limit` and one attempt, watched to its end (FAILED), and `taskctl get` of it. */
  async function failedOnce(...limit: string[]) {
    const submitted = await taskctl(
      "submit",
      "sleep",
      "--payload",
      '{"ms":20000}',
      ...limit,
      "--max-attempts",
      "1",
      "--watch",
      "--json",
    );
    expect(submitted.code, submitted.stderr).toBe(1); // the task ended FAILED
    const { taskId } = JSON.parse(submitted.stdout.split("\n")[0]!) as { taskId: string };
    return { taskId, shown: await taskctl("get", taskId) };
  }

  test("taskctl submit --heartbeat-timeout: an attempt that reports no progress that long is aborted, the task's own limit", async () => {
    // sleep reports every tenth of its time (here 2 s): a 150 ms heartbeat timeout ends the attempt before its first.
    const { shown } = await failedOnce("--heartbeat-timeout", "150ms");
    expect(shown.stdout).toMatch(/^error {5}no progress reported for 150 ms \(its heartbeat timeout\)$/m);
    expect(shown.stdout).toMatch(/^heartbeat 150 ms without a progress report aborts an attempt$/m);
    const refused = await taskctl("submit", "echo", "--heartbeat-timeout", "soon");
    expect(refused.stderr).toContain('--heartbeat-timeout must be a duration like 500ms, 30s, 15m, 2h (got "soon")');
  });

  test("taskctl submit --attempt-timeout --max-attempts 1: one attempt, aborted at its timeout, FAILED and dead-lettered", async () => {
    const { taskId, shown } = await failedOnce("--attempt-timeout", "300ms");
    expect(shown.stdout).toMatch(/^state {5}FAILED$/m);
    expect(shown.stdout).toMatch(/^attempt {3}1$/m);
    expect(shown.stdout).toMatch(/^error {5}timed out after 300 ms$/m);
    expect(shown.stdout).toMatch(/^timeout {3}300 ms per attempt$/m);
    expect(shown.stdout).toMatch(/^attempts {2}at most 1$/m);
    await waitFor("its dead letter", async () => {
      const { deadLetters } = await admin.listDeadLetters({ filter: { taskId } });
      return deadLetters.length > 0;
    });
    const { deadLetters } = await admin.listDeadLetters({ filter: { taskId } });
    expect(deadLetters.map((d) => [d.reason, d.attempts, d.error])).toEqual([
      ["exhausted", 1, "timed out after 300 ms"],
    ]);
  });

  test("taskctl schedule add / ls / pause / run / resume / rm: a recurring task runs to SUCCEEDED, listed with its runs, until removed", async () => {
    const added = await taskctl(
      "schedule",
      "add",
      "tick",
      "* * * * * *",
      "echo",
      "--payload",
      '{"tick":true}',
      "--json",
    );
    expect(added.code, added.stderr).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ schedule: { id: "tick", cron: "* * * * * *" } });
    const again = await taskctl("schedule", "add", "tick", "* * * * * *", "echo");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/schedule tick exists \(set replace to replace it, or delete it first\)/);

    let lastTaskId = "";
    await waitFor("a run of the schedule", async () => {
      const listed = await taskctl("schedule", "ls", "--json");
      const schedules = (JSON.parse(listed.stdout) as { schedules?: Array<{ id: string; lastTaskId?: string }> })
        .schedules;
      lastTaskId = schedules?.find((s) => s.id === "tick")?.lastTaskId ?? "";
      return lastTaskId !== "";
    });
    // The status comes through the notifier, which may lag the result-store under load (seen in CI: the result
    // stored while the status still said PENDING): wait for each.
    await waitFor("the run's result", async () => (await readResult(pipeline.redisClient, lastTaskId)) !== undefined);
    await waitFor(
      "the run's SUCCEEDED",
      async () => (await pipeline.client.getTask({ taskId: lastTaskId })).task?.status?.state === TaskState.SUCCEEDED,
    );
    const { task } = await pipeline.client.getTask({ taskId: lastTaskId });
    expect(task?.metadata).toMatchObject({ schedule_id: "tick" });
    expect(await readResult(pipeline.redisClient, lastTaskId)).toMatchObject({ output: { tick: true } });
    const table = await taskctl("schedule", "ls");
    // NEXT and LAST are relative times ("in 1s", "just now", or "1s ago" for a run a loaded gateway has yet to make).
    expect(table.stdout).toMatch(
      /^tick {2}\* \* \* \* \* \* {2}UTC {2}echo medium {2}(in \d+s|just now|\d+s ago) {2}/m,
    );

    const paused = await taskctl("schedule", "pause", "tick");
    expect(paused.stdout).toBe("tick: paused (no runs until taskctl schedule resume tick)\n");
    expect((await taskctl("schedule", "ls")).stdout).toMatch(/^tick .* paused {2}/m);
    // Run now, while paused: one task, as the operator, followed to SUCCEEDED.
    const ran = await taskctl("schedule", "run", "tick");
    expect(ran.code, ran.stderr).toBe(0);
    const ranTaskId = ran.stdout.trim();
    expect((await taskctl("watch", ranTaskId)).code).toBe(0);
    expect((await pipeline.client.getTask({ taskId: ranTaskId })).task?.metadata.schedule_id).toBe("tick");
    expect((await taskctl("schedule", "run", "no-such")).code).toBe(3);
    const resumed = await taskctl("schedule", "resume", "tick");
    expect(resumed.stdout).toMatch(/^tick: resumed\n/);
    const removed = await taskctl("schedule", "rm", "tick");
    expect(removed.code, removed.stderr).toBe(0);
    expect((await taskctl("schedule", "rm", "tick")).code).toBe(3);
  });

  test("taskctl submit --retry-delay --retry-multiplier: the task's own waits between attempts, shown by get and ListTasks", async () => {
    const submitted = await taskctl(
      "submit",
      "flaky",
      "--payload",
      '{"failures":2}',
      "--retry-delay",
      "300ms",
      "--retry-multiplier",
      "2",
      "--watch",
      "--json",
    );
    expect(submitted.code, submitted.stderr).toBe(0);
    const { taskId } = JSON.parse(submitted.stdout.split("\n")[0]!) as { taskId: string };
    const shown = await taskctl("get", taskId);
    expect(shown.stdout).toMatch(/^state {5}SUCCEEDED$/m);
    expect(shown.stdout).toMatch(/^retries {3}after 300 ms, ×2 each time$/m);
    const waits = async () =>
      (await admin.getTaskHistory({ taskId })).events
        .filter((e) => e.action === "attempt_failed")
        .map((e) => e.detail?.retryInMs);
    await waitFor("both failed attempts audited", async () => (await waits()).length === 2);
    expect(await waits()).toEqual([300, 600]);
    const { tasks } = await admin.listTasks({ query: taskId });
    expect(tasks[0]?.retryBackoff).toMatchObject({ delay: { nanos: 300_000_000 }, multiplier: 2 });
  });

  test("TASK_RETENTION_SECONDS: every record of a task (and a cancel marker) lives that long, not the default week; TASK_SUCCEEDED_RETENTION_SECONDS and --succeeded-retention: a task that SUCCEEDED that long", async () => {
    const submitted = await taskctl(
      "submit",
      "echo",
      "--payload",
      '{"kept":"10 min"}',
      "--succeeded-retention",
      "10m",
      "--json",
    );
    expect(submitted.code, submitted.stderr).toBe(0);
    const { taskId: ownId } = JSON.parse(submitted.stdout.split("\n")[0]!) as { taskId: string };
    const { taskId } = await pipeline.client.submitTask({ type: "echo", payload: { kept: "half a day" } });
    const settled = (id: string) =>
      waitFor(`the result and history of ${id}`, async () => {
        const [result, history] = await Promise.all([
          pipeline.redisClient.exists(Keys.result(id)),
          pipeline.redisClient.llen(Keys.history(id)),
        ]);
        return result === 1 && history >= 4;
      });
    await Promise.all([settled(taskId), settled(ownId)]);
    const { taskId: cancelledId } = await pipeline.client.submitTask({
      type: "echo",
      schedule: { case: "delay", value: { seconds: 3_600n } },
    });
    await pipeline.client.cancelTask({ taskId: cancelledId, reason: "retention check" });
    const records = (id: string) => [
      Keys.task(id),
      Keys.status(id), // the notifier's writes
      Keys.result(id), // result-store
      Keys.history(id), // audit
    ];
    const expectTtls = async (keys: string[], lowest: number, highest: number) => {
      for (const key of keys) {
        const ttl = await pipeline.redisClient.ttl(key);
        expect({ key, ttl }).toEqual({ key, ttl: ttl > lowest && ttl <= highest ? ttl : `${lowest}..${highest}` });
      }
    };
    // Not finished, or not SUCCEEDED: the deployment's retention.
    await expectTtls([Keys.cancel(cancelledId), Keys.status(cancelledId)], 86_000, 86_400);
    // SUCCEEDED: the deployment's succeeded retention, or the task's own.
    await expectTtls(records(taskId), 43_000, 43_200);
    await expectTtls(records(ownId), 500, 600);
    // A delayed task's record lives its delay longer.
    expect(await pipeline.redisClient.ttl(Keys.task(cancelledId))).toBeGreaterThan(86_400 + 3_500);
    expect((await taskctl("get", ownId)).stdout).toMatch(/^kept {6}600\.00 s once it SUCCEEDED$/m);
    const refused = await taskctl("submit", "echo", "--succeeded-retention", "30s");
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("succeeded_retention: 30 s is under the minimum of 60 s");
  });

  test("taskctl promote: a task delayed an hour runs now, and a second promote says it is not waiting", async () => {
    const submitted = await taskctl("submit", "echo", "--payload", '{"promoted":true}', "--delay", "1h", "--json");
    expect(submitted.code, submitted.stderr).toBe(0);
    const { taskId } = JSON.parse(submitted.stdout.split("\n")[0]!) as { taskId: string };
    const promoted = await taskctl("promote", taskId);
    expect(promoted.code, promoted.stderr).toBe(0);
    expect(promoted.stdout).toMatch(new RegExp(`^${taskId} promoted: due now \\(was due \\d{4}-.*Z\\); queued now\n$`));
    const watched = await taskctl("watch", taskId);
    expect(watched.code, watched.stdout + watched.stderr).toBe(0);
    expect((await taskctl("get", taskId)).stdout).toMatch(/^state {5}SUCCEEDED$/m);
    const again = await taskctl("promote", taskId);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`task ${taskId} is not waiting for its time: it is SUCCEEDED`);
  });

  test("a handler rate limited by its downstream spends no attempt: max_attempts 1 still succeeds, each wait audited", async () => {
    const submitted = await taskctl(
      "submit",
      "flaky",
      "--payload",
      '{"failures":0,"rateLimits":2,"retryAfterMs":300}',
      "--max-attempts",
      "1",
      "--watch",
      "--json",
    );
    expect(submitted.code, submitted.stderr + submitted.stdout).toBe(0);
    const { taskId } = JSON.parse(submitted.stdout.split("\n")[0]!) as { taskId: string };
    expect((await taskctl("get", taskId)).stdout).toMatch(/^state {5}SUCCEEDED$/m);
    const actions = async () => (await admin.getTaskHistory({ taskId })).events.map((e) => e.action);
    await waitFor("the audit trail", async () => (await actions()).includes("succeeded"));
    expect((await actions()).filter((a) => a === "rate_limited" || a === "succeeded")).toEqual([
      "rate_limited",
      "rate_limited",
      "succeeded",
    ]);
    await waitFor("the result", async () => (await readResult(pipeline.redisClient, taskId)) !== undefined);
    expect((await readResult(pipeline.redisClient, taskId))?.attempts).toBe(1);
  });

  test("taskctl limits set / ls / clear: a fleet-wide type limit every worker applies without a restart, audited", async () => {
    const worker = pipeline.services.get("worker")!;
    const limitInForce = async (kind: string) => {
      const text = await (await fetch(`http://127.0.0.1:${worker.opsPort}/metrics`)).text();
      const line = text
        .split("\n")
        .find(
          (l) => l.startsWith("tm_worker_type_limit{") && l.includes('type="checksum"') && l.includes(`kind="${kind}"`),
        );
      return line?.split(" ").at(-1);
    };
    const set = await taskctl("limits", "set", "checksum", "--global-concurrency", "2", "--rate", "600/m:5");
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe(
      "checksum: global concurrency 2, rate 10/s (burst 5); the workers apply it within a second\n",
    );
    await waitFor("the worker to apply it", async () => (await limitInForce("global_concurrency")) === "2");
    expect(await limitInForce("rate_per_second")).toBe("10");
    const listed = await taskctl("limits", "ls");
    expect(listed.stdout).toMatch(
      /^TYPE +RUNNING\/GLOBAL +RATE +PAUSED +SET BY +SET AT\nchecksum +0\/2 +10\/s:5 +- +- +\d{4}-\d\d-\d\dT/,
    );

    // Limited, a task still runs (one of two slots, its turn at once).
    const { taskId } = await pipeline.client.submitTask({ type: "checksum", payload: { data: "x", rounds: 1 } });
    await waitFor(
      "the checksum task to succeed",
      async () => (await readResult(pipeline.redisClient, taskId)) !== undefined,
    );

    // limits pause / resume: the pause alone, the limits kept; the worker applies it.
    const paused = await taskctl("limits", "pause", "checksum");
    expect(paused.stdout).toBe(
      "checksum: global concurrency 2, rate 10/s (burst 5), paused (no worker starts one); the workers apply it within a second\n",
    );
    await waitFor("the worker to pause it", async () => (await limitInForce("paused")) === "1");
    expect(await limitInForce("global_concurrency")).toBe("2");
    // limits set during the pause changes the limits and leaves the pause alone.
    const duringPause = await taskctl("limits", "set", "checksum", "--global-concurrency", "2", "--rate", "600/m:5");
    expect(duringPause.stdout).toMatch(
      /^checksum: global concurrency 2, rate 10\/s \(burst 5\), paused \(no worker starts one\) \(was: .*\); the workers apply it within a second\n$/,
    );
    const resumed = await taskctl("limits", "resume", "checksum");
    expect(resumed.stdout).toBe(
      "checksum: resumed (its limits: global concurrency 2, rate 10/s (burst 5)); the workers apply it within a second\n",
    );
    await waitFor("the worker to resume it", async () => (await limitInForce("paused")) === "0");
    expect((await taskctl("limits", "resume", "checksum")).stdout).toMatch(/^checksum: was not paused \(its limits: /);

    const typo = await taskctl("limits", "set", "checksumm", "--global-concurrency", "1");
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(
      /limit\.type: unknown task type "checksumm" \(known: echo, sleep, checksum, flaky, fail\)/,
    );

    const cleared = await taskctl("limits", "clear", "checksum");
    expect(cleared.stdout).toBe("checksum: cleared (the workers' own settings apply again)\n");
    await waitFor("the worker to lift it", async () => (await limitInForce("global_concurrency")) === "0");
    expect((await taskctl("limits", "clear", "checksum")).stdout).toBe("checksum: had no run-time limits\n");
    expect((await taskctl("limits", "ls")).stdout).toBe(
      "no run-time limits (the workers' own WORKER_TYPE_* settings apply)\n",
    );
    // A type whose downstream told a worker to wait (type_backoff, written by that worker) is listed with what is left.
    // (No later test here runs "fail": the workers' own pauses of it outlast the key's removal below.)
    await extendTypeBackoff(pipeline.redisClient, "fail", 20_000, "worker-host:42");
    const backingOff = await taskctl("limits", "ls");
    expect(backingOff.stdout).toMatch(
      /^no run-time limits \(the workers' own WORKER_TYPE_\* settings apply\)\n\nfail: rate limited by its downstream, no worker starts one for 1\d\.\d s more \(told to worker-host:42\)\n$/,
    );
    const listedJson = JSON.parse((await taskctl("limits", "ls", "--json")).stdout);
    expect(listedJson.backoffs).toEqual([
      { type: "fail", remaining: expect.stringMatching(/^1\d(\.\d+)?s$/), setBy: "worker-host:42" },
    ]);
    await pipeline.redisClient.del(Keys.typeBackoff("fail"));
    // A pause alone: listed as such, and cleared like any limit.
    const pausedSet = await taskctl("limits", "set", "fail", "--paused");
    expect(pausedSet.stdout).toBe("fail: paused (no worker starts one); the workers apply it within a second\n");
    expect((await taskctl("limits", "ls")).stdout).toMatch(/^fail +- +- +yes +- +\d{4}-/m);
    expect((await taskctl("limits", "clear", "fail")).code).toBe(0);
    await waitFor("both changes audited", async () => {
      const recent = (await pipeline.redisClient.lrange(Keys.auditEvents, 0, 200)).map(
        (line) => JSON.parse(line) as { action: string; detail?: { type?: string } },
      );
      const actions = recent.filter((e) => e.detail?.type === "checksum").map((e) => e.action);
      return ["type_limit_set", "type_paused", "type_resumed", "type_limit_cleared"].every((a) => actions.includes(a));
    });
  });

  test("taskctl cancel --all --query: every unfinished task of a bad batch cancelled at once, finished ones untouched", async () => {
    const batch = `batch-${crypto.randomUUID().slice(0, 8)}`;
    const delay = { case: "delay" as const, value: { seconds: 3_600n } };
    const waiting = await Promise.all(
      [1, 2, 3].map(
        async () => (await pipeline.client.submitTask({ type: "echo", metadata: { batch }, schedule: delay })).taskId,
      ),
    );
    const done = (await pipeline.client.submitTask({ type: "echo", metadata: { batch } })).taskId;
    // SUCCEEDED itself, not only the result: the notifier can lag the result-store, and a task still RUNNING here
    // would be unfinished, so cancelled below.
    await waitFor(
      "the undelayed task to succeed",
      async () => (await pipeline.client.getTask({ taskId: done })).task?.status?.state === TaskState.SUCCEEDED,
    );

    // The preview first: the same rows, nothing cancelled.
    const preview = await taskctl("cancel", "--all", "--query", batch, "--dry-run");
    expect(preview.code, preview.stderr).toBe(0);
    expect(
      preview.stdout
        .trim()
        .split("\n")
        .slice(1, 4)
        .map((line) => line.split(/ +/).slice(0, 3))
        .sort(),
    ).toEqual([...waiting].sort().map((taskId) => [taskId, "pending", "would_cancel"]));
    expect(preview.stdout.trim().split("\n").at(-1)).toBe("3 would be cancelled (dry run: nothing was cancelled)");
    for (const taskId of waiting) {
      expect((await pipeline.client.getTask({ taskId })).task?.status?.state).toBe(TaskState.PENDING);
    }

    const cancelled = await taskctl("cancel", "--all", "--query", batch, "--reason", "bad batch");
    expect(cancelled.code, cancelled.stderr).toBe(0);
    const lines = cancelled.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^TASK +WAS +RESULT +DETAIL$/);
    // Newest first; the three were submitted together, so their order among themselves is not asserted.
    expect(
      lines
        .slice(1, 4)
        .map((line) => line.split(/ +/).slice(0, 3))
        .sort(),
    ).toEqual([...waiting].sort().map((taskId) => [taskId, "pending", "cancelled"]));
    expect(lines.at(-1)).toBe("3 cancelled");
    for (const taskId of waiting) {
      expect((await pipeline.client.getTask({ taskId })).task?.status?.state).toBe(TaskState.CANCELLED);
    }
    expect((await pipeline.client.getTask({ taskId: done })).task?.status?.state).toBe(TaskState.SUCCEEDED);
    expect((await taskctl("cancel", "--all", "--query", batch)).stdout).toBe("no unfinished task matches\n");

    const unfiltered = await taskctl("cancel", "--all");
    expect(unfiltered.code).toBe(2);
    expect(unfiltered.stderr).toMatch(/cancel --all needs a filter/);
    expect((await taskctl("cancel", "--type", "echo")).stderr).toMatch(/need --all/);
    expect((await taskctl("cancel", done, "--dry-run")).stderr).toMatch(/--dry-run goes with --all/);
  });

  test("bad input is INVALID_ARGUMENT naming the field", async () => {
    await expectInvalid(admin.listTasks({ pageSize: 501 }), "page_size");
    await expectInvalid(admin.listTasks({ pageToken: "nonsense" }), "page_token");
    await expectInvalid(admin.listTasks({ type: "nope" }), "type");
    await expectInvalid(admin.listTasks({ state: 42 as TaskState }), "state");
    await expectInvalid(
      admin.listTasks({ createdAfter: timestampFromMs(2000), createdBefore: timestampFromMs(1000) }),
      "created_before",
    );
    await expectInvalid(admin.getTaskHistory({ taskId: "x" }), "task_id");
    await expectInvalid(admin.listDeadLetters({ filter: { reason: "bored" } }), "filter.reason");
    await expectInvalid(admin.replayDeadLetters({}), "ids");
    await expectInvalid(admin.replayDeadLetters({ ids: ["a"], all: true }), "ids");
    await expectInvalid(admin.discardDeadLetters({}), "ids");
    await expectInvalid(admin.requeueTasks({}), "task_ids");
    await expectInvalid(admin.listTasks({ state: TaskState.FAILED, stalledForSeconds: 60 }), "stalled_for_seconds");
    await expectInvalid(admin.requeueTasks({ taskIds: ["not-a-uuid"] }), "task_ids");
  });
});
