import { toJson } from "@bufbuild/protobuf";
import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import {
  DependencyPolicy,
  Priority,
  retryBackoffText,
  stateCountsText,
  type Task,
  type TaskClient,
  TaskSchema,
  TaskState,
} from "@tm/proto";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { CliError, ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";
import { displayedProgress, formatDuration, oneLine, stateName } from "../render.js";

export async function getCommand(io: Io, client: TaskClient, taskId: string, json: boolean): Promise<ExitCode> {
  const { task } = await client.getTask({ taskId }, { timeoutMs: UNARY_TIMEOUT_MS });
  if (!task) throw new CliError(`not found: task ${taskId}`, ExitCode.NotFound);
  println(io.stdout, json ? JSON.stringify(toJson(TaskSchema, task)) : describeTask(task));
  return ExitCode.Ok;
}

export function describeTask(task: Task): string {
  const status = task.status;
  const lines = [
    `task      ${task.taskId}`,
    `type      ${task.type}`,
    `priority  ${(Priority[task.priority] ?? String(task.priority)).toLowerCase()}`,
    `state     ${status ? stateName(status.state) : "unknown"}`,
  ];
  if (status) {
    const message = status.progressMessage ? `  ${oneLine(status.progressMessage)}` : "";
    lines.push(`progress  ${displayedProgress(status)}%${message}`);
    if (status.progressDetails) lines.push(`details   ${JSON.stringify(status.progressDetails)}`);
    lines.push(`attempt   ${status.attempt}`);
    // A cancelled task's error is why it was cancelled.
    const errorLabel = status.state === TaskState.CANCELLED ? "reason" : "error";
    if (status.error) lines.push(`${errorLabel.padEnd(10)}${status.error}`);
    if (status.updatedAt) lines.push(`updated   ${timestampDate(status.updatedAt).toISOString()}`);
  }
  if (task.createdAt) lines.push(`created   ${timestampDate(task.createdAt).toISOString()}`);
  if (task.parentTaskId) lines.push(`parent    ${task.parentTaskId} (submitted by its handler)`);
  if (task.childrenTotal > 0) {
    lines.push(`children  ${listed(task.children, task.childrenTotal)}`);
    const states = stateCountsText(task.childrenByState);
    if (states) lines.push(`          ${states}`);
    // Where the failures are, and how to run them again together.
    if ((task.childrenByState.FAILED ?? 0) > 0)
      lines.push(
        `          their dead letters: taskctl dlq ls --parent ${task.taskId} (replay: dlq replay --all --parent)`,
      );
  }
  // What its handler logged: where to read it.
  if (task.logLines > 0) {
    lines.push(`logs      ${task.logLines} line${task.logLines === 1 ? "" : "s"} (taskctl logs ${task.taskId})`);
  }
  if (task.runAt) lines.push(`runs at   ${timestampDate(task.runAt).toISOString()} (delayed)`);
  if (task.dependsOn.length > 0) {
    const waiting = task.dependenciesUnfinished > 0 ? ` (waiting for ${task.dependenciesUnfinished})` : "";
    const policy = task.dependencyPolicy === DependencyPolicy.ALL_FINISHED ? " finished, whatever the outcome" : "";
    lines.push(`after     ${task.dependsOn.join(", ")}${policy}${waiting}`);
  }
  if (task.dependentsTotal > 0) lines.push(`before    ${listed(task.dependents, task.dependentsTotal)}`);
  if (task.concurrencyKey) {
    const waiting = task.concurrencyWaiting ? " (waiting for a place)" : "";
    lines.push(
      `limit     at most ${task.concurrencyLimit} at once of concurrency key ${task.concurrencyKey}${waiting}`,
    );
  }
  if (task.fairnessKey) {
    // While it waits, its type's window is full and other keys come first: taskctl fairness <type> says whose turn.
    const waiting = task.fairnessWaiting ? " (waiting for its turn)" : "";
    lines.push(`fairness  key ${task.fairnessKey}, weight ${task.fairnessWeight || 1}${waiting}`);
  }
  if (task.timeout) lines.push(`timeout   ${formatDuration(durationMs(task.timeout))} per attempt`);
  if (task.maxAttempts) lines.push(`attempts  at most ${task.maxAttempts}`);
  if (task.retryBackoff) lines.push(`retries   ${retryBackoffText(task.retryBackoff, formatDuration)}`);
  if (task.heartbeatTimeout)
    lines.push(
      `heartbeat ${formatDuration(durationMs(task.heartbeatTimeout))} without a progress report aborts an attempt`,
    );
  if (task.succeededRetention)
    lines.push(`kept      ${formatDuration(durationMs(task.succeededRetention))} once it SUCCEEDED`);
  if (task.expiresAfter) {
    lines.push(`expires   if not started ${formatDuration(durationMs(task.expiresAfter))} after it was due`);
  }
  for (const [key, value] of Object.entries(task.metadata)) lines.push(`meta      ${key}=${value}`);
  if (task.payload) lines.push(`payload   ${JSON.stringify(task.payload)}`);
  if (task.result) lines.push(`result    ${JSON.stringify(task.result)}`);
  return lines.join("\n");
}

/** Listed task ids (children, dependents) and how many more the gateway did not list. */
function listed(ids: readonly string[], total: number): string {
  const more = total - ids.length;
  return `${ids.join(", ")}${more > 0 ? ` and ${more} more` : ""}`;
}
