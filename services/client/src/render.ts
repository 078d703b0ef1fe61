/**
 * Pure text rendering: progress bars, one line per task, the demo's summary. No I/O here, so the exact output
 * is unit-tested.
 */
import { isFinishedState, TaskState } from "@tm/proto";

/** What the live view knows about one task. */
export interface TaskView {
  taskId: string;
  /** Shown beside the id: the task type (and priority in the demo). */
  label: string;
  state: TaskState;
  progress: number;
  attempt: number;
  error: string;
  /** The running attempt's last progress message (TaskStatus.progress_message). */
  message: string;
  /** ms since the epoch: when we submitted or started watching it, and when we saw it end. */
  startedAt: number;
  endedAt?: number;
}

/** A finished state (@tm/proto isFinishedState), under the name the commands use. */
export const isTerminal = isFinishedState;

export function stateName(state: TaskState): string {
  return TaskState[state] ?? `STATE_${state}`;
}

const ANSI = {
  reset: "\x1b[0m",
  red: "\x1b[31m",
  green: "\x1b[32m",
  yellow: "\x1b[33m",
  cyan: "\x1b[36m",
  dim: "\x1b[2m",
};

function colourOf(state: TaskState): string {
  if (state === TaskState.SUCCEEDED) return ANSI.green;
  if (state === TaskState.FAILED) return ANSI.red;
  if (state === TaskState.CANCELLED) return ANSI.yellow;
  if (state === TaskState.RUNNING) return ANSI.cyan;
  return ANSI.dim;
}

/** A bar of exactly `width` cells for 0-100 (clamped): "█" done, "░" to go. */
export function progressBar(progress: number, width: number): string {
  const cells = Math.max(0, Math.floor(width));
  const clamped = Number.isFinite(progress) ? Math.min(100, Math.max(0, progress)) : 0;
  const filled = Math.round((clamped / 100) * cells);
  return "█".repeat(filled) + "░".repeat(cells - filled);
}

/** A successful task shows a full bar whatever the last progress report said. */
export function displayedProgress(view: Pick<TaskView, "state" | "progress">): number {
  return view.state === TaskState.SUCCEEDED ? 100 : Math.min(100, Math.max(0, view.progress));
}

export interface LineOptions {
  barWidth?: number;
  colour?: boolean;
  /** Cuts the line to this many visible characters (a redrawn line must not wrap). */
  maxWidth?: number;
}

export function renderTaskLine(view: TaskView, options: LineOptions = {}): string {
  const { barWidth = 24, colour = false, maxWidth } = options;
  const progress = displayedProgress(view);
  const id = view.taskId.length > 12 ? view.taskId.slice(0, 12) : view.taskId.padEnd(12);
  const state = stateName(view.state).padEnd(9);
  let tail = "";
  if (view.attempt > 1 || (view.attempt === 1 && view.state === TaskState.RUNNING)) tail += `  attempt ${view.attempt}`;
  if (view.message && view.state === TaskState.RUNNING) tail += `  ${oneLine(view.message)}`;
  if (view.error && view.state !== TaskState.SUCCEEDED) tail += `  ${view.error}`;
  const prefix = `${id}  ${view.label.padEnd(16)}  `;
  let line = `${prefix}${state}  ${progressBar(progress, barWidth)} ${String(progress).padStart(3)}%${tail}`;
  if (maxWidth !== undefined && line.length > maxWidth) line = `${line.slice(0, Math.max(0, maxWidth - 1))}…`;
  if (!colour || line.length < prefix.length + state.length) return line;
  // Colour only the state word so the line's visible width is unchanged.
  const end = prefix.length + state.length;
  return `${line.slice(0, prefix.length)}${colourOf(view.state)}${state}${ANSI.reset}${line.slice(end)}`;
}

/** A message on one line: a handler's newlines and tabs would break a redrawn view. */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

/** Nearest-rank percentile (p in 0-100) of unsorted values; undefined for none. */
export function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1];
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return "-";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export interface Summary {
  counts: Partial<Record<string, number>>;
  p50Ms?: number;
  maxMs?: number;
}

export function summarise(views: TaskView[]): Summary {
  const counts: Record<string, number> = {};
  for (const view of views) counts[stateName(view.state)] = (counts[stateName(view.state)] ?? 0) + 1;
  const durations = views.filter((view) => view.endedAt !== undefined).map((view) => view.endedAt! - view.startedAt);
  const summary: Summary = { counts };
  const p50 = percentile(durations, 50);
  if (p50 !== undefined) summary.p50Ms = p50;
  if (durations.length > 0) summary.maxMs = Math.max(...durations);
  return summary;
}

export function renderSummary(summary: Summary): string {
  const rows = Object.entries(summary.counts).map(
    ([state, count]) => `  ${state.padEnd(11)} ${String(count).padStart(5)}`,
  );
  return [
    "  state       count",
    ...rows,
    "",
    `  time to terminal: p50 ${formatDuration(summary.p50Ms)}, max ${formatDuration(summary.maxMs)}`,
  ].join("\n");
}
