/**
 * Submitting from a program with TaskManagerClient (docs/CLIENT.md). Type-checked with the repository
 * (`pnpm typecheck`); README.md and docs/CLIENT.md quote it (test/docs-examples.unit.test.ts keeps them in step).
 * It is not run as it stands (there is no `resize` type by default); test/task-manager-client.int.test.ts makes the
 * same calls against the whole pipeline.
 */
import { TaskFailedError, TaskManagerClient } from "@tm/proto";

const log = {
  info: (fields: object, message: string) => console.log(message, fields),
  warn: (fields: object, message: string) => console.warn(message, fields),
};

export async function resizeOne(url: string): Promise<void> {
  const tm = new TaskManagerClient({ baseUrl: "http://envoy:50051", apiKey: process.env.TM_API_KEY });

  try {
    const { taskId, result } = await tm.run(
      { type: "resize", payload: { url, width: 640 }, priority: "high", timeoutMs: 60_000, maxAttempts: 5 },
      { timeoutMs: 5 * 60_000, onSubmitted: ({ taskId }) => log.info({ taskId }, "submitted") },
    );
    log.info({ taskId, result }, "resized");
  } catch (error) {
    if (error instanceof TaskFailedError) log.warn({ taskId: error.taskId, state: error.state }, error.reason);
    else throw error; // the gateway refused the request, stayed away, or the wait timed out
  }
}

export async function quickStart(): Promise<void> {
  const tm = new TaskManagerClient({ baseUrl: "http://127.0.0.1:50051" }); // apiKey: "…" with GATEWAY_API_KEYS
  // Submit and wait: the result, or a TaskFailedError saying why (FAILED after its attempts, or CANCELLED).
  const { taskId, result } = await tm.run({ type: "echo", payload: { hi: 1 }, priority: "high", timeoutMs: 30_000 });
  // Or in two halves: the id at once, the finished task (status and result) later, from any process.
  const { taskId: later } = await tm.submit({ type: "sleep", payload: { ms: 500 }, delayMs: 60_000 });
  const task = await tm.waitFor(later, { timeoutMs: 120_000, onStatus: (s) => console.log(s.progress) });
  // A list in SubmitTasks calls: one outcome per task, as Promise.allSettled gives them. A task may wait for
  // earlier ones of the list by their places (a graph: here the third runs once the first two SUCCEEDED).
  const outcomes = await tm.submitMany([
    { type: "echo", payload: { n: 1 } },
    { type: "echo", payload: { n: 2 } },
    { type: "echo", payload: { n: 3 }, dependsOnBatchItems: [0, 1] },
  ]);
  console.log(
    taskId,
    result,
    task.status?.state,
    outcomes.map((outcome) => outcome.status),
  );
}

export async function importForTenant(tenantId: string, files: string[]): Promise<void> {
  const tm = new TaskManagerClient({ baseUrl: "http://envoy:50051", apiKey: process.env.TM_API_KEY });
  // At most 2 of this tenant's imports in the pipeline at once, whoever submits them: the rest wait PENDING, in
  // the order they were submitted, and hold back no other tenant's tasks.
  const concurrency = { key: `tenant:${tenantId}`, limit: 2 };
  const outcomes = await tm.submitMany(files.map((file) => ({ type: "import", payload: { file }, concurrency })));
  console.log(outcomes.map((outcome) => outcome.status));
}
