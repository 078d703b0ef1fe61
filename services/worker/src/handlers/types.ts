import type { z } from "zod";

/** What a handler gets besides its payload. */
export interface TaskContext {
  taskId: string;
  /** 1 on the first attempt. */
  attempt: number;
  /** How many times this attempt was put off by a RateLimitedError and resumed (0 on its first run). */
  deferrals: number;
  /** Fires on cancellation, on the per-task timeout and on shutdown; its reason says which. */
  signal: AbortSignal;
  /** 0-100; the worker throttles what it publishes. */
  reportProgress(percent: number): void;
}

/** One task type: its name, the schema of its payload, and the work. */
export interface TaskHandler<P extends z.ZodType = z.ZodType> {
  type: string;
  payload: P;
  run(payload: z.infer<P>, ctx: TaskContext): Promise<unknown> | unknown;
}

/** Declares a handler with its payload type inferred from its schema. */
export function defineHandler<P extends z.ZodType>(handler: TaskHandler<P>): TaskHandler<P> {
  return handler;
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
