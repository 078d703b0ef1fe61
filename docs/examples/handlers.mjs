// @ts-check
/**
 * Your own task types, loaded by the worker at start (services/worker/README.md, "Your own task types"):
 *
 *   TASK_TYPES=slugify,word-count,word-total,word-count-all   # on every service: the gateway and ingest accept them
 *   WORKER_HANDLER_MODULES=/app/handlers/handlers.mjs          # on the workers: where their handlers are
 *   WORKER_GATEWAY_URL=http://envoy:50051                       # on the workers: where ctx.submitTasks sends children
 *
 * A handler is a plain object { type, payload?, timeoutMs?, heartbeatTimeoutMs?, maxAttempts?, retryBackoff?,
 * run(payload, ctx) }; the module imports nothing from Task Manager. `heartbeatTimeoutMs` aborts an attempt that calls
 * reportProgress for none of that long. `timeoutMs` limits one attempt of the type (instead of the worker's
 * TASK_TIMEOUT_MS), `maxAttempts` and `retryBackoff` ({ delayMs, multiplier?, maxDelayMs?, jitter? }) are its retry
 * policy (instead of FLOW_MAX_DELIVER and FLOW_RETRY_DELAYS_MS); a task's own timeout, max_attempts and
 * retry_backoff still come first. `concurrency` (per worker), `globalConcurrency` (across every worker) and `rate`
 * ("N/UNIT[:BURST]", e.g. "100/m:10", fleet-wide) are its limits; the WORKER_TYPE_* settings' entry for the type
 * replaces them. `isolation: "thread"` runs each attempt in a worker thread, for a handler that keeps the CPU busy
 * (the payload and the result are copied across; this module is imported in the thread too).
 * `payload` is any Standard Schema (a zod 3.24+/4, valibot or arktype schema: `payload: z.object({ text: z.string() })`);
 * the one below is written out by hand so that this file runs without dependencies. `ctx` is { taskId, attempt,
 * deferrals, signal, reportProgress(percent, message?, details?), log, dependencies(), submitTask(request),
 * submitTasks(requests) } (`log`: the worker's pino logger with the task's id, type and attempt; `dependencies()`: the
 * outcomes of the tasks it waited for, `depends_on`, each { taskId, state, result, error }; `submitTask`: a child
 * task, once per key across the attempts; `submitTasks`: a list of them in one gateway call). What `run` returns is
 * the task's result.
 *
 * Errors: anything thrown is a failed attempt, retried with the task's back-off until its attempts are spent. An
 * error named "PermanentError" is not retried (FAILED and dead-lettered at once); one named "RetryAfterError" or
 * "RateLimitedError" with a `retryAfterMs` number is retried after that wait (a rate limit spends no attempt).
 * The tests run this very file (test/pipeline.int.test.ts, services/worker/test/handler-modules.unit.test.ts), and
 * `pnpm typecheck` checks it against task-handler.d.ts (the types a handler module may use, from TypeScript or JSDoc).
 */

/** Not retried: the input can never work. Recognised by its name. */
class PermanentError extends Error {
  /** @override */
  name = "PermanentError";
}

/** The downstream asked us to wait: retried after `retryAfterMs`. Recognised by its name. */
class RetryAfterError extends Error {
  /** @override */
  name = "RetryAfterError";
  /** @param {string} message @param {number} retryAfterMs */
  constructor(message, retryAfterMs) {
    super(message);
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * { text: string of 1 to 10,000 characters } as a Standard Schema (https://standardschema.dev).
 * @type {import("./task-handler.js").PayloadSchema<{ text: string }>}
 */
const textPayload = {
  "~standard": {
    version: 1,
    vendor: "example",
    validate(value) {
      const text = /** @type {{ text?: unknown } | null | undefined} */ (value)?.text;
      if (typeof text !== "string") return { issues: [{ message: "must be a string", path: ["text"] }] };
      if (text.length === 0 || text.length > 10_000) {
        return { issues: [{ message: "must be 1 to 10,000 characters", path: ["text"] }] };
      }
      return { value: { text } };
    },
  },
};

/** @type {import("./task-handler.js").TaskHandler[]} */
export const handlers = [
  {
    type: "slugify",
    payload: textPayload,
    run({ text }) {
      const slug = text
        .normalize("NFKD")
        .replace(/[\u0300-\u036f]/g, "")
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, "-")
        .replace(/^-|-$/g, "");
      if (slug === "") throw new PermanentError(`"${text.slice(0, 40)}" has no letters or digits to make a slug of`);
      return { slug };
    },
  },
  {
    type: "word-count",
    timeoutMs: 10_000,
    // Each attempt in a worker thread: counting one text is quick, but a counter of long documents keeps the CPU
    // busy, and in a thread it cannot stall the worker. The errors below cross the thread by their names.
    isolation: "thread",
    // No schema: any payload; the handler checks what it needs itself.
    async run(payload, { attempt, signal, reportProgress, log }) {
      if (typeof payload.text !== "string") throw new PermanentError("word-count needs a text (a string)");
      // A stand-in for a busy downstream: the first attempt is asked to come back a little later.
      if (payload.busyFirst && attempt === 1) throw new RetryAfterError("the counter is busy", 200);
      signal.throwIfAborted();
      reportProgress(50, "counting the words");
      const words = payload.text.split(/\s+/).filter(Boolean).length;
      log.info({ words }, "counted the words");
      return { words, attempt };
    },
  },
  {
    type: "word-total",
    // Submitted after word-count tasks (depends_on, or depends_on_batch_items in one SubmitTasks call): adds up the
    // words they counted, as a chord's callback would.
    async run(_payload, { dependencies }) {
      const counted = await dependencies();
      if (counted.length === 0)
        throw new PermanentError("word-total needs the word-count tasks it adds up (depends_on)");
      let words = 0;
      for (const { taskId, result } of counted) {
        const n = /** @type {{ words?: unknown } | undefined} */ (result)?.words;
        if (typeof n !== "number") throw new PermanentError(`task ${taskId} has no word count to add`);
        words += n;
      }
      return { words, parts: counted.length };
    },
  },
  {
    type: "word-count-all",
    // A fan-out and its fan-in from a handler, in one gateway call: a word-count child per text, then a word-total
    // child that waits for them all (dependsOnBatchItems: their places in the list). The worker needs
    // WORKER_GATEWAY_URL (children are submitted through the gateway).
    async run(payload, { attempt, submitTasks }) {
      const texts = payload.texts;
      if (
        !Array.isArray(texts) ||
        texts.length === 0 ||
        texts.length > 20 ||
        !texts.every((t) => typeof t === "string")
      )
        throw new PermanentError("word-count-all needs texts: 1 to 20 strings");
      // Children first, in the same order on every attempt: a retry gets the same ones back (deduplicated).
      const children = await submitTasks([
        ...texts.map((text) => ({ type: "word-count", payload: { text } })),
        { type: "word-total", dependsOnBatchItems: texts.map((_, place) => place) },
      ]);
      const parts = children.slice(0, -1);
      const total = /** @type {{ taskId: string, deduplicated: boolean }} */ (children.at(-1));
      // A stand-in for a failure after the children went out: the retry finds them, it does not submit them again.
      if (payload.failFirst && attempt === 1) throw new Error("failed after submitting the children");
      return {
        parts: parts.map((part) => part.taskId),
        total: total.taskId,
        found: [...parts, total].filter((child) => child.deduplicated).length,
      };
    },
  },
];
