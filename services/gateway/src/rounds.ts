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
  const timer = setInterval(() => {
    if (running || stopped) return;
    running = round()
      .catch(onError)
      .finally(() => {
        running = undefined;
      });
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      // `running` never rejects (its errors go to onError): only the deadline does, and ends the wait.
      if (running) await withDeadline(running, stopGraceMs, () => new Error("round still under way")).catch(() => {});
    },
  };
}
