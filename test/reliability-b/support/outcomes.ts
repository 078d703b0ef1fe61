/**
 * Reads the outcome of many tasks straight from Redis with pipelined reads (a status stream per task would not
 * scale to thousands): each task's state, whether a result is stored, and how many times the result-store recorded
 * storing it ("result_stored" audit events in task_history).
 */
import type { Redis } from "ioredis";
import type { JetStreamManager } from "nats";

export interface TaskOutcome {
  taskId: string;
  /** task_status:<id> state, undefined when no status was ever stored. */
  state: string | undefined;
  hasResult: boolean;
  resultStoredCount: number;
}

export const TERMINAL_STATES = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export async function readOutcomes(redis: Redis, taskIds: readonly string[], batch = 500): Promise<TaskOutcome[]> {
  const outcomes: TaskOutcome[] = [];
  for (let start = 0; start < taskIds.length; start += batch) {
    const ids = taskIds.slice(start, start + batch);
    const pipeline = redis.pipeline();
    for (const id of ids) {
      pipeline.hget(`task_status:${id}`, "state");
      pipeline.exists(`task_result:${id}`);
      pipeline.lrange(`task_history:${id}`, 0, -1);
    }
    const replies = (await pipeline.exec()) ?? [];
    ids.forEach((taskId, i) => {
      const [stateErr, state] = replies[i * 3] ?? [];
      const [resultErr, exists] = replies[i * 3 + 1] ?? [];
      const [historyErr, history] = replies[i * 3 + 2] ?? [];
      const error = stateErr ?? resultErr ?? historyErr;
      if (error) throw error;
      outcomes.push({
        taskId,
        state: (state as string | null) ?? undefined,
        hasResult: exists === 1,
        resultStoredCount: (history as string[]).filter(
          (line) => (JSON.parse(line) as { action?: string }).action === "result_stored",
        ).length,
      });
    });
  }
  return outcomes;
}

/** Tasks not yet in a terminal state (for waitFor). */
export async function unfinished(redis: Redis, taskIds: readonly string[]): Promise<string[]> {
  const pipeline = redis.pipeline();
  for (const id of taskIds) pipeline.hget(`task_status:${id}`, "state");
  const replies = (await pipeline.exec()) ?? [];
  return taskIds.filter((_, i) => !TERMINAL_STATES.has(String(replies[i]?.[1])));
}

/**
 * Why tasks are not finishing, for a test's failure message: how many are unfinished, by state, a few of them, and
 * every consumer that still holds messages (pending or unacknowledged). A bare "timed out" says none of this.
 */
export async function stuckReport(redis: Redis, jsm: JetStreamManager, taskIds: readonly string[]): Promise<string> {
  const stuck = await readOutcomes(redis, await unfinished(redis, taskIds));
  const byState = new Map<string, number>();
  for (const o of stuck) byState.set(o.state ?? "no status", (byState.get(o.state ?? "no status") ?? 0) + 1);
  const consumers: string[] = [];
  for (const stream of ["TASKS", "EVENTS"]) {
    for await (const c of jsm.consumers.list(stream)) {
      if (c.num_pending > 0 || c.num_ack_pending > 0 || c.num_redelivered > 0)
        consumers.push(
          `${c.name}: pending ${c.num_pending}, unacked ${c.num_ack_pending}, redelivered ${c.num_redelivered}`,
        );
    }
  }
  return [
    `${stuck.length} of ${taskIds.length} unfinished (${[...byState].map(([state, n]) => `${state} ${n}`).join(", ")})`,
    `first: ${stuck
      .slice(0, 5)
      .map((o) => `${o.taskId} ${o.state ?? "no status"}`)
      .join("; ")}`,
    `consumers holding messages: ${consumers.join("; ") || "none"}`,
  ].join("\n");
}

/** Everything that is wrong with a set of finished tasks, as readable lines (empty when all is well). */
export function problemsOf(outcomes: readonly TaskOutcome[], expectSucceeded: (taskId: string) => boolean): string[] {
  const problems: string[] = [];
  for (const o of outcomes) {
    if (!o.state || !TERMINAL_STATES.has(o.state))
      problems.push(`${o.taskId}: not terminal (${o.state ?? "no status"})`);
    else if (expectSucceeded(o.taskId) && o.state !== "SUCCEEDED") problems.push(`${o.taskId}: ${o.state}`);
    if (o.state === "SUCCEEDED" && !o.hasResult) problems.push(`${o.taskId}: SUCCEEDED without a stored result`);
    if (o.state === "SUCCEEDED" && o.resultStoredCount !== 1)
      problems.push(`${o.taskId}: result stored ${o.resultStoredCount} times`);
    if (o.state !== "SUCCEEDED" && o.hasResult) problems.push(`${o.taskId}: ${o.state} yet has a stored result`);
  }
  return problems;
}

/**
 * True when every consumer of both streams has nothing pending or unacknowledged: every status, result and audit
 * event published so far has been handled, so what Redis holds is final.
 */
export async function streamsDrained(jsm: JetStreamManager): Promise<boolean> {
  for (const stream of ["TASKS", "EVENTS"]) {
    for await (const consumer of jsm.consumers.list(stream)) {
      if (consumer.num_pending > 0 || consumer.num_ack_pending > 0) return false;
    }
  }
  return true;
}
