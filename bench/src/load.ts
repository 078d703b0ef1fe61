/**
 * Load generators. A task is a function that resolves when the system reports it done.
 *
 * - Closed loop: a fixed number of tasks in flight; each completion starts the next. Measures throughput at
 *   saturation. Its latencies only measure the backlog, so they are not reported as the system's latency.
 * - Open loop: tasks are started on a schedule (rate per second) whatever happens to earlier ones. Latency is
 *   counted from each task's INTENDED start time, so a stall that delays sending is charged to the system instead
 *   of silently skipped (coordinated omission). `pacedLoop` is its engine, reporting each outcome as it comes
 *   (the soak uses it directly, so a long run keeps no per-task state).
 */
import { performance } from "node:perf_hooks";
import { throughput } from "./stats.js";

export type RunTask = () => Promise<void>;

export interface LoadResult {
  completed: number;
  failed: number;
  elapsedMs: number;
  tasksPerSec: number;
  latenciesMs: number[];
  firstError?: string;
}

export async function closedLoop(task: RunTask, options: { total: number; inFlight: number }): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  let started = 0;
  let failed = 0;
  let firstError: string | undefined;
  const begin = performance.now();
  const lane = async () => {
    while (started < options.total) {
      started++;
      const t0 = performance.now();
      try {
        await task();
        latenciesMs.push(performance.now() - t0);
      } catch (error) {
        failed++;
        firstError ??= String((error as Error).message ?? error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.inFlight, options.total) }, lane));
  const elapsedMs = performance.now() - begin;
  return withFirstError(
    {
      completed: latenciesMs.length,
      failed,
      elapsedMs,
      tasksPerSec: throughput(latenciesMs.length, elapsedMs),
      latenciesMs,
    },
    firstError,
  );
}

export type Outcome = { ok: true; latencyMs: number } | { ok: false; error: string };

/**
 * The open loop's engine: sends `total` tasks at `ratePerSec` and hands each outcome to `onSettled` as it comes
 * (latency from the intended send time), keeping nothing per task; resolves once every task has settled. A long
 * run (the soak) therefore holds only the tasks in flight.
 */
export async function pacedLoop(
  task: RunTask,
  options: { ratePerSec: number; total: number; tickMs?: number },
  onSettled: (outcome: Outcome) => void,
): Promise<{ sent: number; elapsedMs: number }> {
  const intervalMs = 1000 / options.ratePerSec;
  let inFlight = 0;
  let allSent = false;
  let drained: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    drained = resolve;
  });
  const settle = (outcome: Outcome) => {
    try {
      onSettled(outcome);
    } finally {
      inFlight--;
      if (allSent && inFlight === 0) drained();
    }
  };
  const begin = performance.now();
  const launch = (intendedAt: number) => {
    inFlight++;
    let running: Promise<void>;
    try {
      running = task();
    } catch (error) {
      running = Promise.reject(error);
    }
    running.then(
      () => settle({ ok: true, latencyMs: performance.now() - intendedAt }),
      (error) => settle({ ok: false, error: String((error as Error)?.message ?? error) }),
    );
  };
  let sent = 0;
  // A timer paces the sends; each tick sends every task whose intended time has come (timers are coarse and may
  // fire late: the intended time, not the actual one, starts the latency clock).
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (sent < options.total && begin + sent * intervalMs <= now) {
        launch(begin + sent * intervalMs);
        sent++;
      }
      if (sent >= options.total) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, options.tickMs ?? Math.max(1, Math.min(10, intervalMs / 2)));
    tick();
  });
  allSent = true;
  if (inFlight === 0) drained();
  await done;
  return { sent, elapsedMs: performance.now() - begin };
}

export async function openLoop(
  task: RunTask,
  options: { ratePerSec: number; total: number; tickMs?: number },
): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  let failed = 0;
  let firstError: string | undefined;
  const { elapsedMs } = await pacedLoop(task, options, (outcome) => {
    if (outcome.ok) latenciesMs.push(outcome.latencyMs);
    else {
      failed++;
      firstError ??= outcome.error;
    }
  });
  return withFirstError(
    {
      completed: latenciesMs.length,
      failed,
      elapsedMs,
      tasksPerSec: throughput(latenciesMs.length, elapsedMs),
      latenciesMs,
    },
    firstError,
  );
}

function withFirstError(result: LoadResult, firstError: string | undefined): LoadResult {
  return firstError === undefined ? result : { ...result, firstError };
}

/** Rejects if `promise` has not settled within `ms` (a lost task must fail the phase, not hang the benchmark). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no completion within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
