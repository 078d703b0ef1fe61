/** How enums, times and JSON are shown. */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Priority, TaskState } from "@tm/proto/web";

export function stateName(state: TaskState | undefined): string {
  return TaskState[state ?? TaskState.UNSPECIFIED] ?? "UNKNOWN";
}

export function priorityName(priority: Priority): string {
  return (Priority[priority] ?? "UNSPECIFIED").toLowerCase();
}

export const TERMINAL_STATES = new Set([TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED]);

export function dateOf(timestamp: Timestamp | undefined): Date | undefined {
  return timestamp ? timestampDate(timestamp) : undefined;
}

export function formatTime(date: Date | undefined): string {
  return date ? date.toLocaleString(undefined, { hour12: false }) : "—";
}

/** "42s ago", "3m ago", "5h ago", "2d ago". */
export function ago(date: Date | undefined, now = Date.now()): string {
  if (!date) return "—";
  const seconds = Math.max(0, Math.round((now - date.getTime()) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86_400)}d ago`;
}

/** ago(), or "in 42s", "in 3m", … for a time still ahead. */
export function relative(date: Date, now = Date.now()): string {
  if (date.getTime() <= now) return ago(date, now);
  return `in ${ago(new Date(now - (date.getTime() - now)), now).replace(/ ago$/, "")}`;
}

export function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
