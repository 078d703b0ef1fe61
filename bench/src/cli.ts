/** `pnpm bench`: parses flags, runs the benchmark, prints the tables and writes the JSON. */
import { join } from "node:path";
import { REPO_ROOT } from "@tm/testkit";
import { allocProfiled, renderAllocProfiles } from "./alloc-profile.js";
import { type CliOptions, parseArgs, USAGE } from "./args.js";
import { runBreakdown } from "./breakdown.js";
import { valgrindAvailable } from "./callgrind.js";
import { DRAIN_MESSAGES, runDrain } from "./drain.js";
import { profiled, renderProfiles } from "./profile.js";
import { renderBreakdown, renderDrain, renderReport, renderSoak, writeResult } from "./report.js";
import { runBench } from "./run.js";
import { SIZES } from "./sizes.js";
import { runSoak } from "./soak.js";

async function main() {
  const options = parseArgs(process.argv.slice(2), join(REPO_ROOT, "bench-results"));
  if (options.help) {
    console.log(USAGE);
    return;
  }
  const log = (line: string) => console.error(`[bench] ${line}`);
  // The profilers wrap the run: each sets the services' node flags for its duration and summarises what the services
  // wrote when they exited.
  let run = () => runSelected(options, log);
  const reports: string[] = [];
  if (options.allocProfile) {
    const inner = run;
    run = async () => {
      const { result, dir, summaries } = await allocProfiled(options.out, inner);
      if (result.items)
        for (const summary of summaries) summary.kbPerItem = (summary.allocatedMb * 1000) / result.items;
      reports.push(renderAllocProfiles(summaries, dir, result.itemName));
      return result;
    };
  }
  if (options.profile) {
    const inner = run;
    run = async () => {
      const { result, dir, summaries } = await profiled(options.out, inner);
      reports.push(renderProfiles(summaries, dir));
      return result;
    };
  }
  await run();
  for (const report of reports) console.log(`\n${report}`);
}

/** What a run handled, for figures per item: the service's messages with --drain, the tasks of a comparison run of
 *  the pipeline alone; warm-up included. */
interface RunCount {
  items?: number;
  itemName?: string;
}

/** --instructions warms up on this many times the measured batch. */
const WARMUP_FOR_INSTRUCTIONS = 4;

/** A fresh directory for --instructions' callgrind files; refuses at once when valgrind is not installed. */
async function callgrindDirIn(out: string): Promise<string> {
  if (!(await valgrindAvailable()))
    throw new Error("--instructions needs valgrind (Debian: apt-get install valgrind), which is not on the PATH");
  return join(out, `callgrind-${new Date().toISOString().replace(/[:.]/g, "-")}`);
}

async function runSelected(options: CliOptions, log: (line: string) => void): Promise<RunCount> {
  // What every kind of run (the comparison, --breakdown, --soak) takes from the flags.
  const common = {
    sizeName: options.size,
    size: SIZES[options.size],
    workers: options.workers,
    gateways: options.gateways,
    combine: options.combine,
    clientFlow: options.clientFlow,
    redisReplicas: options.redisReplicas,
    concurrencyKeys: options.concurrencyKeys,
    fairnessKeys: options.fairnessKeys,
    taskTimeoutMs: 30_000,
    log,
  };
  if (options.drain) {
    const messages = DRAIN_MESSAGES[options.size];
    const drain = await runDrain({
      service: options.drain,
      messages,
      // Under callgrind the measured batch must not include V8 still compiling the hot paths: a longer warm-up
      // (run uncounted, ~5× slower than native) leaves it mostly done.
      warmupMessages: options.instructions ? WARMUP_FOR_INSTRUCTIONS * messages : Math.max(500, messages / 10),
      telemetry: options.telemetry,
      ...(options.bareFetch ? { bareFetch: options.bareFetch } : {}),
      ...(options.instructions ? { callgrindDir: await callgrindDirIn(options.out) } : {}),
      log,
    });
    console.log(renderDrain(drain));
    console.log(`\nJSON: ${writeResult(drain, options.out, "drain-")}`);
    return { items: drain.warmupMessages + messages, itemName: "message" };
  }
  if (options.breakdown) {
    const breakdown = await runBreakdown({
      ...common,
      ...(options.breakdownRate !== undefined ? { ratePerSec: options.breakdownRate } : {}),
    });
    console.log(renderBreakdown(breakdown));
    console.log(`\nJSON: ${writeResult(breakdown, options.out, "breakdown-")}`);
    return {};
  }
  if (options.soak !== undefined) {
    const soak = await runSoak({
      ...common,
      telemetry: options.telemetry,
      durationSec: options.soak,
      ...(options.soakRate !== undefined ? { ratePerSec: options.soakRate } : {}),
    });
    console.log(renderSoak(soak));
    console.log(`\nJSON: ${writeResult(soak, options.out, "soak-")}`);
    return {};
  }
  const result = await runBench({
    ...common,
    only: options.only,
    telemetry: options.telemetry,
    scaling: options.scaling,
    ...(options.referenceRate !== undefined ? { referenceRate: options.referenceRate } : {}),
  });
  console.log(renderReport(result));
  console.log(`\nJSON: ${writeResult(result, options.out)}`);
  // Per-task figures only when the pipeline ran once, on its own: then its services saw exactly these tasks.
  const [pipeline, ...others] = result.systems;
  if (pipeline?.system !== "pipeline" || others.length > 0 || options.scaling || !pipeline.saturation) return {};
  const phases = [pipeline.saturation, ...(pipeline.openLoop ?? []), pipeline.oneAtATime];
  const tasks = phases.reduce((sum, phase) => sum + (phase?.tasks ?? 0), common.size.warmup);
  return { items: tasks, itemName: "task" };
}

main().then(
  // The clients' sockets may keep the loop alive after everything is stopped; the run is over.
  () => process.exit(0),
  (error) => {
    console.error(`bench failed: ${(error as Error).message ?? error}`);
    process.exit(1);
  },
);
