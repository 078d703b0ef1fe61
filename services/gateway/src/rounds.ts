/**
 * A gateway's periodic work (the requeue sweeper, the delayed-task releaser, the schedule runner, the stalled-task
 * count): a round every `intervalMs`, one at a time, so a round waiting out an outage is not joined by the next ones.
 * `stop` waits for the round under way, but at most `stopGraceMs`: a round held by a dependency that is down (Redis
 * commands queue until it is back) must not hold the shutdown until the process's hard deadline. Left running, it
 * fails once the connections close, as a crash would leave it: every round's work is safe to cut short (the
 * sweeper, the releaser's return to tasks_delayed, the schedules' compare-and-set). The timer does not keep the
 * process alive.
 */
import { withDeadline } from "@tm/kit";

export interface Rounds {
  /** Runs a round now, or, while one is under way, once more right after it (however often it is asked meanwhile). */
  now(): void;
  stop(): Promise<void>;
}

/** How long `stop` waits for the round under way by default. */
export const STOP_GRACE_MS = 3_000;

export function everyInterval(
  intervalMs: number,
  round: () => Promise<unknown>,
  onError: (error: unknown) => void,
  { stopGraceMs = STOP_GRACE_MS }: { stopGraceMs?: number } = {},
): Rounds {
  let running: Promise<unknown> | undefined;
  let stopped = false;
  let again = false;
  const start = () => {
    running = round()
      .catch(onError)
      .finally(() => {
        running = undefined;
        if (again && !stopped) {
          again = false;
          start();
        }
      });
  };
  const timer = setInterval(() => {
    if (running || stopped) return;
    start();
  }, intervalMs);
  timer.unref();
  return {
    now() {
      if (stopped) return;
      if (running) again = true;
      else start();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      // `running` never rejects (its errors go to onError): only the deadline does, and ends the wait.
      if (running) await withDeadline(running, stopGraceMs, () => new Error("round still under way")).catch(() => {});
    },
  };
}
