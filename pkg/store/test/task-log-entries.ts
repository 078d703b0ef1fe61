/** A task-log line for tests (pkg/store's and the gateway's task-log tests): number `n`, on a fixed clock. */
import type { TaskLogEntry } from "../src/task-logs.js";

export const logEntry = (n: number, extra: Partial<TaskLogEntry> = {}): TaskLogEntry => ({
  time: new Date(Date.UTC(2026, 11, 7, 12, 0, n)).toISOString(),
  level: "info",
  message: `line ${n}`,
  attempt: 1,
  generation: 0,
  ...extra,
});
