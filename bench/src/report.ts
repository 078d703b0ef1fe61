/** Renders a BenchResult as plain-text tables and writes it as JSON to bench-results/<timestamp>.json. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchResult, RatioSet } from "./run.js";

const fixed = (value: number | null | undefined, digits = 1) =>
  value === null || value === undefined ? "—" : value.toFixed(digits);

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
  for (const s of result.systems) if (s.skipped) out.push(`\n${s.system} skipped: ${s.skipped}`);
  for (const s of result.systems) {
    const failures = [s.saturation, ...(s.openLoop ?? [])].filter((p) => p && p.failed > 0);
    for (const p of failures) out.push(`\n${s.system}: ${p?.failed} task(s) failed, first: ${p?.firstError}`);
  }

  const processRows = result.systems.flatMap((s) =>
    (s.processes ?? []).map((p) => [s.system, p.role, p.kind, fixed(p.cpuSecondsPer1000, 3), fixed(p.peakRssMb, 0)]),
  );
  if (processRows.length > 0) {
    out.push("\nPer process (CPU over the saturation phase; peak RSS = VmHWM over the whole run):");
    out.push(table(["system", "process", "kind", "CPU s/1k tasks", "peak RSS MB"], processRows));
  }

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
  ];
  out.push("\nRatios (ours ÷ theirs; latency at 25% / 50% / 75% of the reference rate):");
  out.push(
    table(
      ["", "tasks/s", "CPU/1k", "p50", "p99"],
      [ratioRow("ours/raw", result.ratios.oursOverRaw), ratioRow("ours/BullMQ", result.ratios.oursOverBullmq)],
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

export function writeResult(result: BenchResult, directory: string): string {
  mkdirSync(directory, { recursive: true });
  const file = join(directory, `${result.startedAt.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}
