/** Renders a BenchResult as plain-text tables and writes it as JSON to bench-results/<timestamp>.json. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BreakdownResult } from "./breakdown.js";
import type { InstructionShares } from "./callgrind.js";
import type { DrainResult } from "./drain.js";
import type { BenchResult, RatioSet } from "./run.js";
import type { SoakResult } from "./soak.js";
import { STORAGE_HEADERS, storageHeadline, storageRows } from "./storage.js";
import type { ClientFlow, PipelineConfig, TelemetryMode } from "./systems/pipeline.js";

const fixed = (value: number | null | undefined, digits = 1) =>
  value === null || value === undefined ? "—" : value.toFixed(digits);
/** A count rounded to a whole number with thousands separators (1,234,567). */
const thousands = (value: number) => Math.round(value).toLocaleString("en-US");

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ");
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function renderReport(result: BenchResult): string {
  const out: string[] = [];
  out.push(
    `Benchmark (${result.size}) on ${result.machine.cpus} cores, ${result.machine.cpuModel}, Node ${result.machine.node}`,
  );
  const { workers, gateways, combine = [], telemetry = "on", clientFlow, redisReplicas = 0 } = result.options;
  if (result.options.only.includes("pipeline"))
    out.push(
      `Pipeline layout: ${layoutOf(workers, gateways, combine, clientFlow)}; ${telemetryNote(telemetry)}` +
        (redisReplicas > 0
          ? `; ${redisReplicas} Redis replica${redisReplicas === 1 ? "" : "s"}, every write waited for (REDIS_WAIT_REPLICAS)`
          : "") +
        keysNote(result.options),
    );
  out.push(
    result.reference
      ? `Open-loop rates are fractions of the ${result.reference.source}: ${fixed(result.reference.tasksPerSec, 0)} tasks/s`
      : "No system was measured.",
  );
  out.push("");
  const rows: string[][] = [];
  for (const s of result.systems) {
    if (s.skipped) {
      rows.push([s.system, "SKIPPED", "", "", "", "", "", ""]);
      continue;
    }
    const latencies = (s.openLoop ?? []).map(
      (o) =>
        `${fixed(o.offeredPerSec, 0)}/s: ${fixed(o.latencyMs.p50)}/${fixed(o.latencyMs.p95)}/${fixed(o.latencyMs.p99)}`,
    );
    const peakRss = Math.max(0, ...(s.processes ?? []).filter((p) => p.kind === "system").map((p) => p.peakRssMb));
    rows.push([
      s.system,
      fixed(s.saturation?.tasksPerSec, 0),
      latencies[0] ?? "",
      latencies[1] ?? "",
      latencies[2] ?? "",
      fixed(s.cpu?.systemPer1000, 2),
      fixed(s.cpu?.infraPer1000, 2),
      fixed(peakRss, 0),
    ]);
  }
  out.push(
    table(
      [
        "system",
        "tasks/s",
        "25%: p50/p95/p99 ms",
        "50%: p50/p95/p99 ms",
        "75%: p50/p95/p99 ms",
        "CPU s/1k (system)",
        "CPU s/1k (nats+redis)",
        "max RSS/process MB",
      ],
      rows,
    ),
  );
  const cpuRows = result.systems
    .filter((s) => !s.skipped)
    .map((s) => [
      s.system,
      fixed((s.cpu?.systemPer1000 ?? 0) + (s.cpu?.infraPer1000 ?? 0), 2),
      ...(s.openLoop ?? []).map((o) => `${fixed(o.offeredPerSec, 0)}/s: ${fixed(o.cpuPer1000, 2)}`),
    ]);
  if (cpuRows.length > 0) {
    out.push(
      "\nCPU s per 1,000 tasks, system + nats + redis (batching under saturation makes the closed loop cheaper):",
    );
    out.push(table(["system", "saturation", "open loop 25%", "open loop 50%", "open loop 75%"], cpuRows));
  }
  const serialRows = result.systems
    .filter((s) => s.oneAtATime)
    .map((s) => {
      const l = s.oneAtATime?.latencyMs;
      return [s.system, String(l?.count ?? 0), fixed(l?.min), fixed(l?.p50), fixed(l?.p95), fixed(l?.p99)];
    });
  if (serialRows.length > 0) {
    out.push("\nOne task at a time (nothing else in flight: the latency floor on this machine), ms:");
    out.push(table(["system", "tasks", "min", "p50", "p95", "p99"], serialRows));
  }
  for (const s of result.systems.filter((x) => x.otlpReceived)) {
    const paths = Object.entries(s.otlpReceived ?? {}).map(
      ([path, r]) => `${path} ${r.requests} requests, ${fixed(r.bytes / 1e6, 1)} MB`,
    );
    out.push(`\n${s.system}: exported over OTLP during the run: ${paths.join("; ") || "nothing"}`);
  }
  const roundTrips = [...(result.roundTrips ?? []), ...result.systems.flatMap((s) => s.roundTrips ?? [])];
  if (roundTrips.length > 0) {
    const gap = roundTrips[0]?.idleGapMs ?? 0;
    out.push(`\nRound trips on this machine, p50 ms (one call at a time, from the benchmark process):`);
    out.push(
      table(
        ["call", "back to back", `after ${gap} ms idle`],
        roundTrips.map((r) => [r.name, fixed(r.backToBackMs, 2), fixed(r.afterIdleMs, 2)]),
      ),
    );
  }
  for (const s of result.systems) if (s.skipped) out.push(`\n${s.system} skipped: ${s.skipped}`);
  for (const s of result.systems) {
    const failures = [s.saturation, ...(s.openLoop ?? []), s.oneAtATime].filter((p) => p && p.failed > 0);
    for (const p of failures) out.push(`\n${s.system}: ${p?.failed} task(s) failed, first: ${p?.firstError}`);
  }

  const processRows = result.systems.flatMap((s) =>
    (s.processes ?? []).map((p) => [
      s.system,
      p.role,
      p.kind,
      fixed(p.cpuSecondsPer1000, 3),
      (s.openLoop ?? []).map((o) => fixed(o.processCpuPer1000?.[p.role], 2)).join(" / "),
      fixed(p.peakRssMb, 0),
    ]),
  );
  if (processRows.length > 0) {
    out.push(
      "\nPer process (CPU s per 1,000 tasks at saturation, and in the open loops at 25% / 50% / 75%; peak RSS = VmHWM " +
        "over the whole run):",
    );
    out.push(table(["system", "process", "kind", "CPU s/1k: saturation", "open loops", "peak RSS MB"], processRows));
  }
  for (const s of result.systems)
    if (s.storage)
      out.push(`\n${storageHeadline(s.system, s.storage)}`, table(STORAGE_HEADERS, storageRows(s.storage)));

  const ratioRow = (label: string, r: RatioSet) => [
    label,
    fixed(r.tasksPerSec, 2),
    fixed(r.cpuPer1000, 2),
    Object.values(r.p50AtReference)
      .map((v) => fixed(v, 2))
      .join(" / "),
    Object.values(r.p99AtReference)
      .map((v) => fixed(v, 2))
      .join(" / "),
    `${fixed(r.oneAtATimeP50, 2)} / ${fixed(r.oneAtATimeP99, 2)}`,
  ];
  out.push(
    "\nRatios (a ÷ b; latency at 25% / 50% / 75% of the reference rate, and one task at a time; raw-flow/raw " +
      "bounds what any implementation of the contract's message flow can reach against the chain):",
  );
  out.push(
    table(
      ["", "tasks/s", "CPU/1k", "p50", "p99", "one at a time p50 / p99"],
      [
        ratioRow("ours/raw", result.ratios.oursOverRaw),
        ratioRow("ours/BullMQ", result.ratios.oursOverBullmq),
        ratioRow("ours/raw-flow", result.ratios.oursOverRawFlow),
        // The contract's 14 messages in bare nats.js against the chain's 6: the ceiling of any implementation.
        ratioRow("raw-flow/raw", result.ratios.rawFlowOverRaw),
      ],
    ),
  );

  if (result.scaling) {
    out.push("\nScaling (pipeline; p99 at one fixed offered rate):");
    out.push(
      table(
        ["workers", "gateways", "tasks/s", "offered/s", "p99 ms"],
        result.scaling.map((s) => [
          String(s.workers),
          String(s.gateways),
          s.skipped ? "SKIPPED" : fixed(s.tasksPerSec, 0),
          fixed(s.offeredPerSec, 0),
          fixed(s.p99Ms),
        ]),
      ),
    );
  }
  return out.join("\n");
}

export function telemetryNote(mode: TelemetryMode): string {
  if (mode === "off") return "telemetry OFF (OTEL_SDK_DISABLED=true in every service)";
  if (mode === "export") return "telemetry exported (spans and metrics over OTLP to a discarding sink)";
  return "telemetry on, no exporter";
}

const signed = (value: number | null | undefined, digits = 1) =>
  value === null || value === undefined ? "—" : `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;

/**
 * "1 worker, 1 gateway, one process per service" or "..., scheduler+audit in one process (services/combined)";
 * with the one-call client flow, "...; each task one SubmitTaskAndStreamStatus call".
 */
export function layoutOf(
  workers: number,
  gateways: number,
  combine: readonly string[],
  clientFlow: ClientFlow = "two-calls",
): string {
  const replicas = `${workers} worker${workers === 1 ? "" : "s"}, ${gateways} gateway${gateways === 1 ? "" : "s"}`;
  const layout =
    combine.length > 0
      ? `${replicas}, ${combine.join("+")} in one process (services/combined), the others one process each`
      : `${replicas}, one process per service`;
  return clientFlow === "one-call" ? `${layout}; each task one SubmitTaskAndStreamStatus call` : layout;
}

export function renderBreakdown(result: BreakdownResult): string {
  if (result.skipped) return `Latency breakdown (pipeline) SKIPPED: ${result.skipped}`;
  const { workers, gateways, combine = [], clientFlow } = result.config;
  const out: string[] = [];
  const how = result.load.mode === "paced" ? `paced at ${fixed(result.load.offeredPerSec)} tasks/s` : "one at a time";
  const t = result.tasks;
  out.push(
    `Latency breakdown (pipeline: ${layoutOf(workers, gateways, combine, clientFlow)}; every span exported) on ` +
      `${result.machine.cpus} cores, ${result.machine.cpuModel}, Node ${result.machine.node}`,
    `${t.completed} of ${t.tasks} tasks completed ${how}` +
      (t.firstError ? ` (first failure: ${t.firstError})` : "") +
      `; as the client saw them (submit → SUCCEEDED and the result stored): p50 ${fixed(t.latencyMs.p50)} ms, ` +
      `p99 ${fixed(t.latencyMs.p99)} ms`,
    `${result.breakdown.traces} traces read; from the first span (the gateway's SubmitTask, or SubmitTaskAndStreamStatus) to the last span's end: ` +
      `median ${fixed(result.breakdown.totalMs)} ms`,
    "\nEach span a task's trace holds, in order: medians of its start and end (ms from the trace's first span) and " +
      "of its duration; the gap between one row's end and a later row's start is time between processes.",
  );
  out.push(
    table(
      ["start", "end", "duration", "span", "in traces"],
      result.breakdown.rows.map((r) => [
        fixed(r.startMs, 2).padStart(7),
        fixed(r.endMs, 2).padStart(7),
        fixed(r.durationMs, 2).padStart(8),
        r.span,
        String(r.traces),
      ]),
    ),
  );
  return out.join("\n");
}

function instructionsCell(shares: InstructionShares | undefined): string {
  if (!shares) return "-";
  const parts = [shares.javascript, shares.gc, shares.compiling, shares.other].map((n) => thousands(n));
  return `${thousands(shares.total)} (${parts.join(", ")})`;
}

export function renderDrain(result: DrainResult): string {
  const counted = result.runs.some((r) => r.instructionsPerMessage !== undefined);
  const out = [
    `Drain: ${result.service} consuming ${result.subject} alone (${telemetryNote(result.telemetry)}) on ` +
      `${result.machine.cpus} cores, ${result.machine.cpuModel}, Node ${result.machine.node}; each consumer on fresh ` +
      `servers, ${result.warmupMessages} warm-up messages, then the measured batch published as fast as JetStream ` +
      "takes it and drained",
    "",
    table(
      [
        "consumer",
        "messages",
        "messages/s",
        "CPU µs/message: consumer",
        "nats-server",
        "redis-server",
        "peak RSS MB",
        "NATS in/out per message: msgs, bytes",
        "syscalls per message (read/write): consumer, nats-server",
        ...(counted ? ["instructions/message: total (JavaScript, GC, compiling, other)"] : []),
      ],
      result.runs.map((r) => [
        r.consumer,
        String(r.messages),
        fixed(r.messagesPerSec, 0),
        fixed(r.perMessageUs.consumer, 0),
        fixed(r.perMessageUs.natsServer, 0),
        fixed(r.perMessageUs.redisServer, 0),
        fixed(r.peakRssMb, 0),
        r.natsPerMessage
          ? `${fixed(r.natsPerMessage.inMsgs, 2)} / ${fixed(r.natsPerMessage.outMsgs, 2)}, ` +
            `${fixed(r.natsPerMessage.inBytes, 0)} / ${fixed(r.natsPerMessage.outBytes, 0)}`
          : "-",
        r.syscallsPerMessage
          ? `${fixed(r.syscallsPerMessage.consumer.reads, 2)}/${fixed(r.syscallsPerMessage.consumer.writes, 2)}, ` +
            `${fixed(r.syscallsPerMessage.natsServer.reads, 2)}/${fixed(r.syscallsPerMessage.natsServer.writes, 2)}`
          : "-",
        ...(counted ? [instructionsCell(r.instructionsPerMessage)] : []),
      ]),
    ),
  ];
  const [service, bare] = result.runs;
  if (service && bare && bare.perMessageUs.consumer > 0)
    out.push(
      `\n${service.consumer} spends ${fixed(service.perMessageUs.consumer - bare.perMessageUs.consumer, 0)} µs of CPU ` +
        `per message beyond what the baseline (${bare.consumer}) does ` +
        `(${fixed(service.perMessageUs.consumer / bare.perMessageUs.consumer, 1)}× its CPU)`,
    );
  if (service?.instructionsPerMessage && bare?.instructionsPerMessage?.total)
    out.push(
      `${service.consumer} executes ${thousands(service.instructionsPerMessage.total)} instructions per message ` +
        `(callgrind), ${fixed(service.instructionsPerMessage.total / bare.instructionsPerMessage.total, 1)}× the baseline's; ` +
        "the CPU figures above are of processes running under valgrind, comparable only with other --instructions runs",
    );
  return out.join("\n");
}

/** How the pipeline's tasks were spread over concurrency and fairness keys ("" for none), after a layout. */
function keysNote({ concurrencyKeys: keys, fairnessKeys: fairness }: Partial<PipelineConfig>): string {
  return (
    (keys && keys.keys > 0
      ? `; tasks spread over ${keys.keys} concurrency key${keys.keys === 1 ? "" : "s"} of limit ${keys.limit}`
      : "") +
    (fairness && fairness.keys > 0
      ? `; tasks spread over ${fairness.keys} fairness key${fairness.keys === 1 ? "" : "s"} through a window of ${fairness.window}`
      : "")
  );
}

export function renderSoak(result: SoakResult): string {
  const out: string[] = [];
  const { workers, gateways, combine = [], telemetry = "on", clientFlow } = result.config;
  if (result.skipped) return `Soak (pipeline) SKIPPED: ${result.skipped}`;
  const rate = result.rate;
  out.push(
    `Soak (pipeline: ${layoutOf(workers, gateways, combine, clientFlow)}; ${telemetryNote(telemetry)}` +
      `${keysNote(result.config)}) on ${result.machine.cpus} cores, ` +
      `${result.machine.cpuModel}, Node ${result.machine.node}; load average ${result.machine.loadAvgAtStart
        .map((l) => l.toFixed(1))
        .join(" ")} at start, ${result.machine.loadAvgAtEnd.map((l) => l.toFixed(1)).join(" ")} at end`,
  );
  out.push(
    `${result.durationSec} s at ${fixed(rate.offeredPerSec)} tasks/s ` +
      (rate.source === "measured peak"
        ? `(50% of the measured peak, ${fixed(rate.peakTasksPerSec, 0)} tasks/s in a closed loop of ` +
          `${result.peakPhase?.tasks} tasks with ${result.peakPhase?.inFlight} in flight)`
        : "(--soak-rate)") +
      `; a sample every ${result.sampleEverySec} s`,
  );
  const t = result.totals;
  out.push(
    `Tasks: ${t.sent} sent, ${t.completed} completed, ${t.failed} failed` +
      (t.firstError ? ` (first: ${t.firstError})` : "") +
      `, ${fixed(t.completed / Math.max(t.elapsedMs / 1000, 1e-9))} tasks/s over ${fixed(t.elapsedMs / 1000)} s`,
  );

  out.push(
    `\nRSS per process (VmRSS, MB): first = t=0 (after warm-up${rate.source === "measured peak" ? " and the peak phase" : ""}), ` +
      `end = after the last task settled; slope = least squares over the samples from t=${result.slopeSkipSec} s`,
  );
  out.push(
    table(
      ["process", "kind", "first", "end", "max", "end−first", "slope MB/min", "samples in slope"],
      result.growth.map((g) => [
        g.role,
        g.kind,
        fixed(g.firstMb),
        fixed(g.endMb),
        fixed(g.maxMb),
        signed(g.growthMb),
        signed(g.slopeMbPerMin, 2),
        String(g.slopeSamples),
      ]),
    ),
  );

  out.push("\nWindows (completions and failures counted when they happen; latency from the intended send time):");
  out.push(
    table(
      ["t (s)", "sent", "completed", "failed", "tasks/s", "p50 ms", "p99 ms", "max ms", "in flight at end"],
      result.samples
        .filter((s) => s.window)
        .map((s) => {
          const w = s.window as NonNullable<typeof s.window>;
          return [
            `${fixed(w.fromSec, 0)}–${fixed(w.toSec, 0)}`,
            String(w.sent),
            String(w.completed),
            String(w.failed),
            fixed(w.tasksPerSec),
            fixed(w.latencyMs.p50),
            fixed(w.latencyMs.p99),
            fixed(w.latencyMs.max),
            String(w.inFlightAtEnd),
          ];
        }),
    ),
  );
  const failing = result.samples.filter((s) => s.window?.firstError);
  for (const s of failing)
    out.push(`window ending t=${fixed(s.atSec, 0)} s: ${s.window?.failed} failed, first: ${s.window?.firstError}`);
  return out.join("\n");
}

/** Writes the result as JSON into `directory`, named after its start time (prefixed, e.g. "soak-"). */
export function writeResult(result: { startedAt: string }, directory: string, prefix = ""): string {
  mkdirSync(directory, { recursive: true });
  const file = join(directory, `${prefix}${result.startedAt.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}
