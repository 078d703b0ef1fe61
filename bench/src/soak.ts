/**
 * `--soak SECONDS`: the pipeline under a steady open loop at 50 % of its peak, for the performance issue's target
 * "no growth across a 10-minute soak at 50 % load". Starts the pipeline as the normal run does (fresh nats-server
 * and redis-server), warms it up and measures its saturation peak with the same closed-loop phase (or takes the
 * rate from `--soak-rate`), then runs the open loop for SECONDS, sampling every ~15 s each process's VmRSS and the
 * tasks sent/completed/failed and latency of that window. Outcomes are counted per window as they come, so a long
 * soak holds one window of latencies, not one per task of the run.
 */
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { pacedLoop } from "./load.js";
import { currentRssMbOf, type WatchedProcess } from "./proc.js";
import {
  type BenchOptions,
  type BenchResult,
  DRIVER,
  disposeInfra,
  machineInfo,
  type PhaseResult,
  phaseOf,
  pipelineSkipReason,
  startInfra,
  startSystem,
  warmUp,
  warmUpAndSaturate,
} from "./run.js";
import { type RssGrowth, rssGrowth, SLOPE_SKIP_SEC, SoakWindow, sampleTimes, type WindowStats } from "./soak-stats.js";
import type { SystemUnderTest } from "./system.js";
import { type PipelineConfig, pipelineConfigOf } from "./systems/pipeline.js";

/** The soak's rate as a fraction of the measured peak (the "50 % load"). */
export const SOAK_FRACTION = 0.5;
export const SOAK_SAMPLE_EVERY_SEC = 15;

export interface SoakOptions extends Omit<BenchOptions, "only" | "scaling"> {
  durationSec: number;
  /** Offered tasks/s; skips the peak measurement. */
  ratePerSec?: number;
  sampleEverySec?: number;
}

export interface SoakSample {
  /** Seconds since the open loop started (0: after warm-up and the peak phase, before the first send). */
  atSec: number;
  /** VmRSS in MB per process role; null when the process could not be read. */
  rssMb: Record<string, number | null>;
  /** The window that ends at this sample; null for the first sample. */
  window: WindowStats | null;
}

export interface SoakResult {
  kind: "soak";
  startedAt: string;
  finishedAt: string;
  machine: BenchResult["machine"] & { loadAvgAtEnd: number[] };
  size: string;
  config: PipelineConfig;
  durationSec: number;
  sampleEverySec: number;
  slopeSkipSec: number;
  /** Where the rate comes from: the measured peak × SOAK_FRACTION, or --soak-rate. */
  rate: { offeredPerSec: number; source: "measured peak" | "--soak-rate"; peakTasksPerSec?: number };
  peakPhase?: PhaseResult & { inFlight: number };
  processes: WatchedProcess[];
  samples: SoakSample[];
  growth: (Pick<WatchedProcess, "role" | "kind"> & RssGrowth)[];
  totals: { sent: number; completed: number; failed: number; elapsedMs: number; firstError?: string };
  skipped?: string;
}

function readRss(processes: readonly WatchedProcess[]): Record<string, number | null> {
  return Object.fromEntries(processes.map((p) => [p.role, currentRssMbOf(p.pid) ?? null]));
}

async function soakOpenLoop(
  system: SystemUnderTest,
  watched: readonly WatchedProcess[],
  ratePerSec: number,
  durationSec: number,
  everySec: number,
  log: (line: string) => void,
): Promise<{ samples: SoakSample[]; totals: SoakResult["totals"] }> {
  const samples: SoakSample[] = [{ atSec: 0, rssMb: readRss(watched), window: null }];
  const totals: SoakResult["totals"] = { sent: 0, completed: 0, failed: 0, elapsedMs: 0 };
  const window = new SoakWindow(0);
  const begin = performance.now();
  const elapsedSec = () => (performance.now() - begin) / 1000;
  const sample = () => {
    const atSec = elapsedSec();
    const stats = window.close(atSec, totals.sent - totals.completed - totals.failed);
    samples.push({ atSec, rssMb: readRss(watched), window: stats });
    const rss = Object.entries(samples[samples.length - 1]?.rssMb ?? {})
      .filter(([role]) => role !== "nats-server" && role !== "redis-server" && role !== DRIVER.role)
      .map(([, mb]) => mb ?? 0);
    log(
      `soak: t=${atSec.toFixed(0)}s ${stats.completed} done, ${stats.failed} failed, p50/p99 ` +
        `${stats.latencyMs.p50.toFixed(0)}/${stats.latencyMs.p99.toFixed(0)} ms, services RSS ` +
        `${Math.min(...rss).toFixed(0)}–${Math.max(...rss).toFixed(0)} MB`,
    );
  };

  // Timers anchored at the start (not chained intervals), so the samples do not drift over a long soak.
  const timers = sampleTimes(durationSec, everySec).map((t) => setTimeout(sample, t * 1000));
  const tracked = () => {
    totals.sent++;
    window.sent();
    return system.runOne();
  };
  try {
    const { elapsedMs } = await pacedLoop(
      tracked,
      { ratePerSec, total: Math.max(1, Math.round(ratePerSec * durationSec)) },
      (outcome) => {
        if (outcome.ok) {
          totals.completed++;
          window.completed(outcome.latencyMs);
        } else {
          totals.failed++;
          totals.firstError ??= outcome.error;
          window.failed(outcome.error);
        }
      },
    );
    totals.elapsedMs = elapsedMs;
  } finally {
    for (const timer of timers) clearTimeout(timer);
  }
  // The last sample: every task has settled (a late one may have been charged to the timeout, taskTimeoutMs).
  sample();
  return { samples, totals };
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const startedAt = new Date().toISOString();
  const loadAvgAtStart = loadavg();
  const config = pipelineConfigOf(options);
  const everySec = options.sampleEverySec ?? SOAK_SAMPLE_EVERY_SEC;
  const { log } = options;
  const base = {
    kind: "soak" as const,
    startedAt,
    size: options.sizeName,
    config,
    durationSec: options.durationSec,
    sampleEverySec: everySec,
    slopeSkipSec: SLOPE_SKIP_SEC,
  };
  const finish = () => ({ finishedAt: new Date().toISOString(), loadAvgAtEnd: loadavg() });

  const skipped = pipelineSkipReason(config.combine);
  if (skipped) {
    const { finishedAt, loadAvgAtEnd } = finish();
    return {
      ...base,
      finishedAt,
      machine: { ...machineInfo(loadAvgAtStart), loadAvgAtEnd },
      rate: { offeredPerSec: 0, source: options.ratePerSec ? "--soak-rate" : "measured peak" },
      processes: [],
      samples: [],
      growth: [],
      totals: { sent: 0, completed: 0, failed: 0, elapsedMs: 0 },
      skipped,
    };
  }

  const infra = await startInfra("pipeline");
  let system: SystemUnderTest | undefined;
  try {
    log("pipeline: starting");
    system = await startSystem("pipeline", infra, options, config);
    const watched = [...system.processes(), DRIVER];

    let rate: SoakResult["rate"];
    let peakPhase: SoakResult["peakPhase"];
    if (options.ratePerSec !== undefined) {
      log(`pipeline: warm-up, ${options.size.warmup} tasks (no peak phase: --soak-rate)`);
      await warmUp(system, options.size);
      rate = { offeredPerSec: options.ratePerSec, source: "--soak-rate" };
    } else {
      const { saturation } = await warmUpAndSaturate("pipeline", system, watched, options);
      if (!(saturation.tasksPerSec > 0))
        throw new Error(`no task completed in the peak phase: ${saturation.firstError}`);
      peakPhase = { ...phaseOf(saturation, options.size.saturationTasks), inFlight: options.size.inFlight };
      rate = {
        offeredPerSec: saturation.tasksPerSec * SOAK_FRACTION,
        source: "measured peak",
        peakTasksPerSec: saturation.tasksPerSec,
      };
    }

    log(
      `soak: ${options.durationSec} s at ${rate.offeredPerSec.toFixed(1)} tasks/s (${rate.source}), ` +
        `sampling every ${everySec} s`,
    );
    const { samples, totals } = await soakOpenLoop(
      system,
      watched,
      rate.offeredPerSec,
      options.durationSec,
      everySec,
      log,
    );
    const growth = watched.map((p) => ({
      role: p.role,
      kind: p.kind,
      ...rssGrowth(samples.map((s) => ({ atSec: s.atSec, mb: s.rssMb[p.role] ?? null }))),
    }));
    const { finishedAt, loadAvgAtEnd } = finish();
    return {
      ...base,
      finishedAt,
      machine: { ...machineInfo(loadAvgAtStart), loadAvgAtEnd },
      rate,
      ...(peakPhase ? { peakPhase } : {}),
      processes: watched,
      samples,
      growth,
      totals,
    };
  } finally {
    await system?.stop().catch((error) => log(`pipeline: stop failed: ${error}`));
    await disposeInfra(infra);
  }
}
