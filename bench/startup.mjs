// `node bench/startup.mjs [--runs N] [--services a,b]` (after `pnpm build`): how long each service takes to start, bundled as deployed
// (dist/bundle/index.js, scripts/bundle.mjs) and as tsc's output (dist/index.js), one service at a time on an
// otherwise idle machine: wall time from spawn to /readyz 200, the CPU the process used by then, and its RSS a second
// later. Its own nats-server and redis-server on free ports. Figures: docs/PERFORMANCE.md, "session 23: bundled services".
import { spawn } from "node:child_process";
import { cpus } from "node:os";
import { join } from "node:path";
import { freePort, REPO_ROOT, startArgsOf, startNats, startRedis } from "@tm/testkit";
import { cpuSecondsOf, currentRssMbOf } from "./dist/proc.js";

const ALL = ["gateway", "ingest", "enricher", "scheduler", "worker", "result-store", "notifier", "audit", "deadletter"];
const option = (name) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const RUNS = Number(option("--runs") ?? 3);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`--runs must be a positive integer, got ${option("--runs")}`);
// --services a,b: only those (the test suite's smoke run starts one).
const SERVICES = option("--services")?.split(",") ?? ALL;
const unknown = SERVICES.filter((name) => !ALL.includes(name));
if (unknown.length > 0) throw new Error(`--services: unknown ${unknown.join(", ")} (one of ${ALL.join(", ")})`);
const kitDir = join(REPO_ROOT, "pkg", "kit");
const VARIANTS = {
  bundled: { preload: "@tm/kit/telemetry", entry: "dist/bundle/index.js" },
  "tsc output": { preload: join(kitDir, "dist", "telemetry-preload.js"), entry: "dist/index.js" },
};
/** CPU milliseconds a process has used so far, and its RSS now (bench/src/proc.ts, as the benchmark reads them). */
const cpuMs = (pid) => cpuSecondsOf(pid) * 1000;
const rssMb = (pid) => currentRssMbOf(pid) ?? 0;

async function startOnce(name, variant, infra) {
  const cwd = join(REPO_ROOT, "services", name);
  // The start script's node flags, with the variant's preload and entry.
  const flags = startArgsOf(cwd)
    .slice(0, -1)
    .map((arg, i, all) => (all[i - 1] === "--import" ? variant.preload : arg));
  const port = await freePort();
  const env = { ...process.env, NATS_URL: infra.nats.url, REDIS_URL: infra.redis.url, LOG_LEVEL: "warn" };
  if (name === "enricher" || name === "result-store") env.PORT = String(port);
  else env.OPS_PORT = String(port);
  if (name === "gateway") Object.assign(env, { GRPC_PORT: String(await freePort()), GATEWAY_WEB_PORT: "0" });
  if (name === "ingest") env.ENRICHER_URL = "http://127.0.0.1:9";
  const startedAt = performance.now();
  const child = spawn(process.execPath, [...flags, variant.entry], { cwd, env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}: ${stderr.slice(-500)}`);
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (performance.now() - startedAt > 30_000)
        throw new Error(`${name} not ready within 30 s: ${stderr.slice(-500)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const readyMs = performance.now() - startedAt;
    const cpu = cpuMs(child.pid);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return { readyMs, cpuMs: cpu, rssMb: rssMb(child.pid) };
  } finally {
    child.kill("SIGTERM");
    await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once("exit", resolve)));
  }
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const [nats, redis] = await Promise.all([startNats(), startRedis()]);
try {
  console.log(`start-up, median of ${RUNS} runs per service (${process.version}, ${cpus().length} CPUs)`);
  console.log(
    `${"service".padEnd(14)}${Object.keys(VARIANTS)
      .map((v) => `${v}: ready ms, CPU ms, RSS MB`.padStart(38))
      .join("")}`,
  );
  const totals = Object.fromEntries(Object.keys(VARIANTS).map((v) => [v, { readyMs: 0, cpuMs: 0, rssMb: 0 }]));
  for (const name of SERVICES) {
    const cells = [];
    for (const [label, variant] of Object.entries(VARIANTS)) {
      const runs = [];
      for (let i = 0; i < RUNS; i++) runs.push(await startOnce(name, variant, { nats, redis }));
      const row = {
        readyMs: median(runs.map((r) => r.readyMs)),
        cpuMs: median(runs.map((r) => r.cpuMs)),
        rssMb: median(runs.map((r) => r.rssMb)),
      };
      for (const key of Object.keys(row)) totals[label][key] += row[key];
      cells.push(`${row.readyMs.toFixed(0)}, ${row.cpuMs.toFixed(0)}, ${row.rssMb.toFixed(1)}`.padStart(38));
    }
    console.log(`${name.padEnd(14)}${cells.join("")}`);
  }
  const sums = Object.values(totals).map((t) =>
    `${t.readyMs.toFixed(0)}, ${t.cpuMs.toFixed(0)}, ${t.rssMb.toFixed(0)}`.padStart(38),
  );
  console.log(`${(SERVICES.length === ALL.length ? "all nine" : "together").padEnd(14)}${sums.join("")}`);
} finally {
  await Promise.all([nats.dispose(), redis.dispose()]);
}
