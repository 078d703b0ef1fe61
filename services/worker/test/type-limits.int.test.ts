/**
 * Per-type limits against a real nats-server and redis-server: with WORKER_TYPE_CONCURRENCY a type's tasks run one
 * at a time while other types go past them; with WORKER_TYPE_RATES two worker replicas together start a type no
 * faster than its rate (the turns are reserved in Redis), and with WORKER_TYPE_GLOBAL_CONCURRENCY run one at a time
 * across both (slots in Redis, given back when done); the rate holds also after a Redis outage during which their turns could not
 * be reserved. Every task runs once, on its first delivery: a held task spends no attempt. A held task that is
 * cancelled is skipped at once.
 */
import type { ResultMessage } from "@tm/flow";
import { clearTypeLimit, Keys, setTypeLimit } from "@tm/store";
import { useClients, useInfra, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import {
  cancelAsGateway,
  enrichedTask,
  publishCancelNotice,
  publishTask,
  StreamReader,
  startWorker,
} from "./support.js";

const infra = useInfra();
const clients = useClients(infra);

/** Waits for one result per task and returns them in the tasks' order. */
async function resultsOf(taskIds: string[]): Promise<ResultMessage[]> {
  const tasks = new StreamReader(await clients.nc.jetstreamManager(), "TASKS");
  await waitFor(
    `results of ${taskIds.length} tasks`,
    async () => {
      await tasks.refresh();
      return taskIds.every((id) => tasks.results(id).length > 0);
    },
    { timeoutMs: 20_000 },
  );
  for (const id of taskIds) expect(tasks.results(id), `task ${id} ran once`).toHaveLength(1);
  return taskIds.map((id) => tasks.results(id)[0] as ResultMessage);
}

const ms = (iso: string) => Date.parse(iso);

/**
 * The starts keep to the rate. The turns are `intervalMs` apart on Redis's clock, but a start can come a little after
 * its turn (a busy event loop), which shortens the gap to the next one: so each start is checked against the
 * schedule, no earlier than `i` intervals after the first less half an interval (the first one's own lateness: 30 ms
 * was too little on a slow machine just after a Redis restart, a first start 53 ms late), and no two closer than half
 * an interval. A burst (starts milliseconds apart) fails both checks; a rate twice too fast fails the first from its
 * third start.
 */
function expectStartsApart(results: ResultMessage[], intervalMs: number): void {
  const starts = results.map((r) => ms(r.startedAt)).sort((a, b) => a - b);
  const first = starts[0] as number;
  const gaps = starts.slice(1).map((start, i) => start - (starts[i] as number));
  const early = starts.filter((start, i) => start < first + i * intervalMs - intervalMs / 2);
  expect(
    early.map((start) => start - first),
    `starts after the first ${starts.map((s) => s - first)}`,
  ).toEqual([]);
  expect(
    gaps.filter((gap) => gap < intervalMs / 2),
    `gaps ${gaps}`,
  ).toEqual([]);
}

/** The tm_worker_type_* gauges of a worker, read from its /metrics. */
async function typeGauges(opsPort: number | undefined) {
  const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  return text.split("\n").filter((line) => line.startsWith("tm_worker_type_"));
}

test("WORKER_TYPE_CONCURRENCY=sleep=1: sleep tasks run one at a time, echo tasks go past the held ones", async () => {
  const worker = await startWorker(infra, { WORKER_CONCURRENCY: "4", WORKER_TYPE_CONCURRENCY: "sleep=1" });
  try {
    const sleeps = [1, 2, 3].map((n) => enrichedTask("sleep", { ms: 300, n }));
    const echoes = [1, 2, 3].map((n) => enrichedTask("echo", { n }));
    for (const task of [...sleeps, ...echoes]) await publishTask(clients.nc, task);

    const sleepResults = await resultsOf(sleeps.map((t) => t.taskId));
    const echoResults = await resultsOf(echoes.map((t) => t.taskId));
    const runs = sleepResults.map((r) => [ms(r.startedAt), ms(r.completedAt)] as const).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i]![0], "a sleep task started before the previous one finished").toBeGreaterThanOrEqual(
        runs[i - 1]![1],
      );
    }
    // The echo tasks, queued behind three sleeps, all finished before the last sleep started.
    const lastSleepStart = runs[runs.length - 1]![0];
    expect(echoResults.every((r) => ms(r.completedAt) <= lastSleepStart)).toBe(true);
    expect([...sleepResults, ...echoResults].every((r) => r.attempts === 1)).toBe(true);
    expect(await typeGauges(worker.opsPort)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^tm_worker_type_running\{.*type="sleep".*\} 0$/),
        expect.stringMatching(/^tm_worker_type_buffered\{.*type="sleep".*\} 0$/),
      ]),
    );
  } finally {
    await worker.stop();
  }
});

test("WORKER_TYPE_RATES=echo=5/s on two workers: the fleet starts echo tasks at most one per 200 ms", async () => {
  const env = { WORKER_CONCURRENCY: "4", WORKER_TYPE_RATES: "echo=5/s" };
  const workers = [await startWorker(infra, env), await startWorker(infra, env)];
  try {
    const echoes = Array.from({ length: 8 }, (_, n) => enrichedTask("echo", { n }, "high"));
    for (const task of echoes) await publishTask(clients.nc, task);
    expectStartsApart(await resultsOf(echoes.map((t) => t.taskId)), 200);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
});

test("WORKER_TYPE_GLOBAL_CONCURRENCY=sleep=1 on two workers: one sleep task at a time across both; the slot is given back", async () => {
  const env = { WORKER_CONCURRENCY: "4", WORKER_TYPE_GLOBAL_CONCURRENCY: "sleep=1" };
  const workers = [await startWorker(infra, env), await startWorker(infra, env)];
  try {
    const sleeps = [1, 2, 3, 4].map((n) => enrichedTask("sleep", { ms: 150, n }));
    const echoes = [1, 2].map((n) => enrichedTask("echo", { n }));
    for (const task of [...sleeps, ...echoes]) await publishTask(clients.nc, task);
    const runs = (await resultsOf(sleeps.map((t) => t.taskId)))
      .map((r) => [ms(r.startedAt), ms(r.completedAt)] as const)
      .sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i]![0], "a sleep task started while another ran").toBeGreaterThanOrEqual(runs[i - 1]![1]);
    }
    expect((await resultsOf(echoes.map((t) => t.taskId))).every((r) => r.attempts === 1)).toBe(true);
    await waitFor(
      "the last slot to be given back",
      async () => (await clients.redis.zcard(Keys.typeSlots("sleep"))) === 0,
    );
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
});

test("a run-time limit (taskctl limits set) applies to running workers without a restart, and clearing it lifts it", async () => {
  const env = { WORKER_CONCURRENCY: "4", WORKER_PAUSE_POLL_MS: "100" };
  const workers = [await startWorker(infra, env), await startWorker(infra, env)];
  /** Whether every worker reports this fleet-wide limit in force for sleep (tm_worker_type_limit). */
  const everyWorkerAt = async (limit: number) => {
    for (const worker of workers) {
      const line = (await typeGauges(worker.opsPort)).find(
        (l) =>
          l.startsWith("tm_worker_type_limit{") &&
          l.includes('type="sleep"') &&
          l.includes('kind="global_concurrency"'),
      );
      if (!line?.endsWith(` ${limit}`)) return false;
    }
    return true;
  };
  const runsOf = async (count: number) => {
    const sleeps = Array.from({ length: count }, (_, n) => enrichedTask("sleep", { ms: 200, n }));
    for (const task of sleeps) await publishTask(clients.nc, task);
    return (await resultsOf(sleeps.map((t) => t.taskId)))
      .map((r) => [ms(r.startedAt), ms(r.completedAt)] as const)
      .sort((a, b) => a[0] - b[0]);
  };
  const overlapping = (runs: (readonly [number, number])[]) =>
    runs.filter((run, i) => i > 0 && run[0] < runs[i - 1]![1]).length;
  try {
    await setTypeLimit(clients.redis, { type: "sleep", globalConcurrency: 1, at: new Date().toISOString(), by: "ops" });
    await waitFor("both workers to apply the limit", () => everyWorkerAt(1));
    expect(overlapping(await runsOf(4)), "a sleep task started while another ran").toBe(0);

    expect(await clearTypeLimit(clients.redis, "sleep")).toBe(true);
    await waitFor("both workers to lift it", () => everyWorkerAt(0));
    expect(overlapping(await runsOf(4))).toBeGreaterThan(0);
  } finally {
    await clearTypeLimit(clients.redis, "sleep");
    await Promise.all(workers.map((w) => w.stop()));
  }
});

test("an operator's pause (taskctl limits set --paused): no worker starts the type until it is lifted; others run", async () => {
  const worker = await startWorker(infra, { WORKER_CONCURRENCY: "2", WORKER_PAUSE_POLL_MS: "100" });
  const pausedGauge = async () =>
    (await typeGauges(worker.opsPort)).find(
      (l) => l.startsWith("tm_worker_type_limit{") && l.includes('type="checksum"') && l.includes('kind="paused"'),
    );
  try {
    await setTypeLimit(clients.redis, { type: "checksum", paused: true, at: new Date().toISOString(), by: "ops" });
    await waitFor("the worker to apply the pause", async () => (await pausedGauge())?.endsWith(" 1") === true);
    const held = enrichedTask("checksum", { data: "x", rounds: 1 });
    const other = enrichedTask("echo", { other: true });
    await publishTask(clients.nc, held);
    await publishTask(clients.nc, other);
    await resultsOf([other.taskId]); // echo runs meanwhile
    await waitFor(
      "the paused task buffered, not started",
      async () => worker.started.dispatcher.queued("medium") === 1,
    );
    const liftedAt = Date.now();
    expect(await clearTypeLimit(clients.redis, "checksum")).toBe(true);
    const [result] = await resultsOf([held.taskId]);
    expect(ms(result!.startedAt)).toBeGreaterThanOrEqual(liftedAt);
    expect(result!.attempts).toBe(1); // held, not retried
    expect((await pausedGauge())?.endsWith(" 0")).toBe(true);
  } finally {
    await clearTypeLimit(clients.redis, "checksum");
    await worker.stop();
  }
});

test("a task cancelled while its paused type holds it is skipped at once; a stray notice (no marker) starts nothing", async () => {
  const worker = await startWorker(infra, { WORKER_CONCURRENCY: "2", WORKER_PAUSE_POLL_MS: "100" });
  const events = new StreamReader(await clients.nc.jetstreamManager(), "EVENTS");
  const auditActions = async (taskId: string) => {
    await events.refresh();
    return events.audits(taskId).map((a) => a.action);
  };
  try {
    await setTypeLimit(clients.redis, { type: "checksum", paused: true, at: new Date().toISOString(), by: "ops" });
    await waitFor(
      "the worker to apply the pause",
      async () => worker.started.limits.limitsOf("checksum").paused === true,
    );
    const stray = enrichedTask("checksum", { data: "x", rounds: 1 });
    const cancelled = enrichedTask("checksum", { data: "y", rounds: 1 });
    await publishTask(clients.nc, stray);
    await publishTask(clients.nc, cancelled);
    await waitFor("both held", async () => worker.started.dispatcher.queued("medium") === 2);
    // A notice for a task that was not cancelled (no marker) first: its check answers before the next one's.
    publishCancelNotice(clients.nc, stray.taskId);
    await cancelAsGateway(clients.redis, clients.nc, cancelled.taskId);
    await waitFor("the cancelled one skipped while the type is still paused", async () =>
      (await auditActions(cancelled.taskId)).includes("skipped_cancelled"),
    );
    expect(worker.started.dispatcher.queued("medium")).toBe(1); // the stray one still held
    expect(await auditActions(stray.taskId)).toEqual([]);
    expect(await clearTypeLimit(clients.redis, "checksum")).toBe(true);
    expect((await resultsOf([stray.taskId]))[0]?.attempts).toBe(1);
  } finally {
    await clearTypeLimit(clients.redis, "checksum");
    await worker.stop();
  }
});

test("a slot held by a worker that died (no renewals) is taken back when its lease runs out: the task then runs", async () => {
  const worker = await startWorker(infra, { WORKER_CONCURRENCY: "2", WORKER_TYPE_GLOBAL_CONCURRENCY: "sleep=1" });
  try {
    // The only slot, held by a worker that is gone: its lease ends in 1.5 s and nobody renews it.
    const [seconds, micros] = await clients.redis.time();
    const leaseEnd = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) + 1_500;
    await clients.redis.zadd(Keys.typeSlots("sleep"), leaseEnd, "dead-worker:1");
    const task = enrichedTask("sleep", { ms: 10 });
    await publishTask(clients.nc, task);
    const [result] = await resultsOf([task.taskId]);
    expect(ms(result!.startedAt)).toBeGreaterThanOrEqual(leaseEnd - 10);
    expect(result!.attempts).toBe(1);
  } finally {
    await worker.stop();
  }
});

test("rate-limited tasks meeting a Redis outage wait for their turns, neither started nor failed: then each runs once, first attempt, still 200 ms apart", async () => {
  const worker = await startWorker(infra, { WORKER_CONCURRENCY: "4", WORKER_TYPE_RATES: "echo=5/s" });
  try {
    await infra.redis.stop();
    const echoes = [1, 2, 3].map((n) => enrichedTask("echo", { n }));
    try {
      for (const task of echoes) await publishTask(clients.nc, task);
      // All three buffered in the worker, their turns not reservable while Redis is down.
      await waitFor("the three deliveries held in the worker", async () =>
        (await typeGauges(worker.opsPort)).some((line) => /^tm_worker_type_buffered\{.*type="echo".*\} 3$/.test(line)),
      );
    } finally {
      await infra.redis.start();
    }
    const results = await resultsOf(echoes.map((t) => t.taskId));
    expect(results.every((r) => r.attempts === 1)).toBe(true);
    // Their turns were reserved once Redis answered, on the type's schedule: no burst after the outage.
    expectStartsApart(results, 200);
  } finally {
    await worker.stop();
  }
});
