/**
 * A handler's attempt ends when its signal aborts (timeout, cancel, shutdown), whether or not the handler stops.
 * JavaScript cannot stop a function that ignores its AbortSignal (a handler awaiting a call without a timeout, a busy
 * loop between awaits); without this, such a handler would hold its slot and its delivery (heartbeated) for ever, and
 * the task would never time out. Its attempt fails (or the task is cancelled, or handed back) at once; the handler
 * goes on in the background, its outcome dropped, and `onIgnored` is told if it has still not finished `graceMs` after
 * the abort, `onFinishedLate` when it finally does.
 */
export interface AbandonHooks {
  graceMs: number;
  onIgnored: () => void;
  onFinishedLate: () => void;
}

export function untilAborted<T>(run: () => T | Promise<T>, signal: AbortSignal, hooks: AbandonHooks): Promise<T> {
  let handled: Promise<T>;
  try {
    handled = Promise.resolve(run());
  } catch (error) {
    return Promise.reject(error);
  }
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let ignored = false;
    const onAbort = () => {
      reject(signal.reason);
      const timer = setTimeout(() => {
        if (settled) return;
        ignored = true;
        hooks.onIgnored();
      }, hooks.graceMs);
      timer.unref();
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    const settle = () => {
      settled = true;
      signal.removeEventListener("abort", onAbort);
      if (ignored) hooks.onFinishedLate();
    };
    handled.then(
      (value) => {
        settle();
        resolve(value);
      },
      (error: unknown) => {
        settle();
        reject(error);
      },
    );
  });
}
