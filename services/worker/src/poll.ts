/**
 * What the worker follows in Redis by polling (the paused queues, the run-time type limits): read once now and every
 * `pollMs` after. `ready` settles after the first read, so the worker can apply it before its consumers start; once
 * stopped, a read still in flight applies nothing (`stopped()`).
 */
export interface Follower {
  ready: Promise<void>;
  stop(): void;
}

export function pollEvery(pollMs: number, apply: (stopped: () => boolean) => Promise<void>): Follower {
  let stopped = false;
  const isStopped = () => stopped;
  const timer = setInterval(() => void apply(isStopped), pollMs);
  timer.unref();
  return {
    ready: apply(isStopped),
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
