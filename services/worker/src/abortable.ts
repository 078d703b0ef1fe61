/**
 * A handler's attempt ends when its signal aborts (timeout, cancel, shutdown), whether or not the handler stops.
 * JavaScript cannot stop a function that ignores its AbortSignal (a handler awaiting a call without a timeout, a busy
 * loop between awaits); without this, such a handler would hold its slot and its delivery (heartbeated) for ever, and
 * the task would never time out. Its attempt fails (or the task is cancelled, or handed back) at once; the handler
 * goes on in the background, its outcome dropped, and `onIgnored` is told if it has still not finished `graceMs` after
 * the abort, `onFinishedLate` when it finally does.
 *
 * On the path of every task: one promise and one abort listener per attempt; what tells an ignored abort is set up
 * only once the signal aborts.
 */
export interface AbandonHooks<S> {
  graceMs: number;
  onIgnored: (subject: S, reason: unknown) => void;
  onFinishedLate: (subject: S) => void;
}

/** `handled`: the handler's result (or promise of it), already started; `subject`: what the hooks are told about. */
export function untilAborted<T, S>(
  handled: T | PromiseLike<T>,
  signal: AbortSignal,
  hooks: AbandonHooks<S>,
  subject: S,
): Promise<T> {
  const outcome = Promise.resolve(handled);
  return new Promise<T>((resolve, reject) => {
    outcome.then(resolve, reject);
    const onAbort = () => {
      reject(signal.reason); // nothing, when the handler finished first
      let settled = false;
      let ignored = false;
      const finished = () => {
        settled = true;
        if (ignored) hooks.onFinishedLate(subject);
      };
      outcome.then(finished, finished);
      setTimeout(() => {
        if (settled) return;
        ignored = true;
        hooks.onIgnored(subject, signal.reason);
      }, hooks.graceMs).unref();
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
}
