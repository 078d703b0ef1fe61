/**
 * Load generators. A task is a function that resolves when the system reports it done.
 *
 * - Closed loop: a fixed number of tasks in flight; each completion starts the next. Measures throughput at
 *   saturation. Its latencies only measure the backlog, so they are not reported as the system's latency.
 * - Open loop: tasks are started on a schedule (rate per second) whatever happens to earlier ones. Latency is
 *   counted from each task's INTENDED start time, so a stall that delays sending is charged to the system instead
 *   of silently skipped (coordinated omission).
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

export async function openLoop(
  task: RunTask,
  options: { ratePerSec: number; total: number; tickMs?: number },
): Promise<LoadResult> {
  const intervalMs = 1000 / options.ratePerSec;
  const latenciesMs: number[] = [];
  const pending: Promise<void>[] = [];
  let failed = 0;
  let firstError: string | undefined;
  const begin = performance.now();
  const launch = (intendedAt: number) => {
    pending.push(
      task().then(
        () => {
          latenciesMs.push(performance.now() - intendedAt);
        },
        (error) => {
          failed++;
          firstError ??= String((error as Error).message ?? error);
        },
      ),
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
  await Promise.all(pending);
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
