/**
 * `--breakdown`: where one task's latency goes, hop by hop. Runs the pipeline alone (fresh nats-server and
 * redis-server) with every span exported to the benchmark's OTLP sink, which keeps them; warms it up, then runs tasks
 * one at a time (the latency floor) or, with `--breakdown-rate N`, paced at N tasks/s; stops the services (each
 * flushes its spans on the way out) and reads each task's trace: breakdown-stats.ts.
 *
 * Exporting every span costs CPU (docs/PERFORMANCE.md, "Telemetry"), so the times are somewhat longer than those of a
 * run without an exporter; the shape (which hop takes what share) is what this is for.
 */
import { loadavg } from "node:os";
import { type Breakdown, latencyBreakdown } from "./breakdown-stats.js";
import { closedLoop, type LoadResult, openLoop } from "./load.js";
import {
  type BenchOptions,
  type BenchResult,
  disposeInfra,
  machineInfo,
  type PhaseResult,
  phaseOf,
  pipelineSkipReason,
  startInfra,
  startSystem,
  warmUp,
} from "./run.js";
import { openLoopTasks } from "./sizes.js";
import { type LatencySummary, summarize } from "./stats.js";
import type { SystemUnderTest } from "./system.js";
import { type PipelineConfig, pipelineConfigOf } from "./systems/pipeline.js";

export interface BreakdownOptions extends Omit<BenchOptions, "only" | "scaling" | "telemetry"> {
  /** Offered tasks/s (open loop); without it, tasks run one at a time. */
  ratePerSec?: number;
}

export interface BreakdownResult {
  kind: "breakdown";
  startedAt: string;
  finishedAt: string;
  machine: BenchResult["machine"];
  size: string;
  config: PipelineConfig;
  /** How the measured tasks were sent. */
  load: { mode: "one at a time" } | { mode: "paced"; offeredPerSec: number };
  /** The measured tasks as the client saw them (submit → SUCCEEDED and the result stored). */
  tasks: PhaseResult & { latencyMs: LatencySummary };
  breakdown: Breakdown;
  skipped?: string;
}

export async function runBreakdown(options: BreakdownOptions): Promise<BreakdownResult> {
  const startedAt = new Date().toISOString();
  const machine = machineInfo(loadavg());
  const config = pipelineConfigOf({ ...options, telemetry: "export" });
  const load: BreakdownResult["load"] =
    options.ratePerSec === undefined ? { mode: "one at a time" } : { mode: "paced", offeredPerSec: options.ratePerSec };
  const base = { kind: "breakdown" as const, startedAt, machine, size: options.sizeName, config, load };
  const empty = { traces: 0, totalMs: 0, rows: [] };

  const skipped = pipelineSkipReason(config.combine);
  if (skipped) {
    return {
      ...base,
      finishedAt: new Date().toISOString(),
      tasks: { tasks: 0, completed: 0, failed: 0, elapsedMs: 0, tasksPerSec: 0, latencyMs: summarize([]) },
      breakdown: empty,
      skipped,
    };
  }

  const { size, log } = options;
  const infra = await startInfra("pipeline");
  let system: SystemUnderTest | undefined;
  try {
    log("pipeline: starting, every span exported to the benchmark");
    system = await startSystem("pipeline", infra, options, { ...config, keepSpans: true });
    log(`pipeline: warm-up, ${size.warmup} tasks`);
    await warmUp(system, size);
    // Traces that start from here on are the measured tasks' (the warm-up's may still be arriving).
    const sinceMs = Date.now();
    let result: LoadResult;
    let count: number;
    if (options.ratePerSec === undefined) {
      count = size.oneAtATimeTasks;
      log(`pipeline: ${count} tasks one at a time`);
      result = await closedLoop(system.runOne, { total: count, inFlight: 1 });
    } else {
      count = openLoopTasks(size, options.ratePerSec);
      log(`pipeline: ${count} tasks at ${options.ratePerSec}/s`);
      result = await openLoop(system.runOne, { ratePerSec: options.ratePerSec, total: count });
    }
    const spans = system.spans?.() ?? [];
    // Stopping the services flushes the spans they still hold (each exports in batches, every 5 s by default).
    await system.stop();
    system = undefined;
    const breakdown = latencyBreakdown(spans, { sinceMs });
    log(`pipeline: ${breakdown.traces} traces of ${result.completed} completed tasks read`);
    return {
      ...base,
      finishedAt: new Date().toISOString(),
      tasks: { ...phaseOf(result, count), latencyMs: summarize(result.latenciesMs) },
      breakdown,
    };
  } finally {
    await system?.stop().catch((error) => log(`pipeline: stop failed: ${error}`));
    await disposeInfra(infra);
  }
}
