/**
 * A gateway's periodic work (the requeue sweeper, the delayed-task releaser, the schedule runner): a round every
 * `intervalMs`, one at a time, so a round waiting out an outage is not joined by the next ones; `stop` waits for the
 * round under way. The timer does not keep the process alive.
 */
export interface Rounds {
  stop(): Promise<void>;
}

export function everyInterval(
  intervalMs: number,
  round: () => Promise<unknown>,
  onError: (error: unknown) => void,
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
      await running;
    },
  };
}
