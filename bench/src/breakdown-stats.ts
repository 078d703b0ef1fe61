/**
 * Where a task's time goes, from its exported spans: for every span a task's trace holds (by service, name and
 * occurrence: the notifier's third `events.status process` is the SCHEDULED update), when it starts and ends relative
 * to the trace's first span (the gateway's SubmitTask), as medians over many tasks. Read top to bottom, the rows are
 * the task's path through the pipeline, and the gaps between one row's end and the next row's start are time spent
 * between processes (sockets, wake-ups, waiting for a core).
 */
import type { ReceivedSpan } from "@tm/testkit";
import { quantileSorted } from "./stats.js";

export interface BreakdownRow {
  /** `<service> <span name>`, with ` #n` from the second occurrence in a trace on. */
  span: string;
  /** In how many of the traces it occurs (a row shown must occur in at least half of them). */
  traces: number;
  /** Medians over the traces that hold it, in ms from the trace's first span start. */
  startMs: number;
  endMs: number;
  durationMs: number;
}

export interface Breakdown {
  /** Traces of tasks analysed (those whose spans carry a `task.id`). */
  traces: number;
  /** Median time from the first span's start to the last span's end. */
  totalMs: number;
  rows: BreakdownRow[];
}

/**
 * The breakdown of every trace among `spans` that belongs to a task (has a span with the `task.id` attribute) and,
 * with `sinceMs` (epoch ms), starts at or after it: the warm-up's traces are left out that way.
 */
export function latencyBreakdown(spans: readonly ReceivedSpan[], options: { sinceMs?: number } = {}): Breakdown {
  const byTrace = new Map<string, ReceivedSpan[]>();
  for (const span of spans) {
    const list = byTrace.get(span.traceId);
    if (list) list.push(span);
    else byTrace.set(span.traceId, [span]);
  }
  const since = options.sinceMs ?? Number.NEGATIVE_INFINITY;
  const tasks = [...byTrace.values()].filter(
    (list) =>
      list.some((s) => s.attributes["task.id"] !== undefined) && Math.min(...list.map((s) => s.startMs)) >= since,
  );

  const samples = new Map<string, { starts: number[]; ends: number[]; durations: number[] }>();
  const totals: number[] = [];
  for (const trace of tasks) {
    const ordered = [...trace].sort((a, b) => a.startMs - b.startMs || a.endMs - b.endMs);
    const origin = ordered[0]?.startMs ?? 0;
    totals.push(Math.max(...ordered.map((s) => s.endMs)) - origin);
    const seen = new Map<string, number>();
    for (const span of ordered) {
      const base = `${span.service} ${span.name}`;
      const n = (seen.get(base) ?? 0) + 1;
      seen.set(base, n);
      const key = n === 1 ? base : `${base} #${n}`;
      let entry = samples.get(key);
      if (!entry) {
        entry = { starts: [], ends: [], durations: [] };
        samples.set(key, entry);
      }
      entry.starts.push(span.startMs - origin);
      entry.ends.push(span.endMs - origin);
      entry.durations.push(span.endMs - span.startMs);
    }
  }

  const rows = [...samples.entries()]
    .filter(([, s]) => s.starts.length * 2 >= tasks.length)
    .map(([span, s]) => ({
      span,
      traces: s.starts.length,
      startMs: median(s.starts),
      endMs: median(s.ends),
      durationMs: median(s.durations),
    }))
    .sort((a, b) => a.startMs - b.startMs || a.endMs - b.endMs);
  return { traces: tasks.length, totalMs: tasks.length > 0 ? median(totals) : 0, rows };
}

/** Nearest-rank, as every figure of the benchmark: an observed value. */
const median = (values: number[]) =>
  quantileSorted(
    [...values].sort((a, b) => a - b),
    0.5,
  );
