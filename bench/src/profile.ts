/**
 * `--profile`: every service the run starts is started with V8's sampling profiler (`node --cpu-prof`), and each
 * service's profile is summarised when the run ends: where its busy time went, by function (self time), by package,
 * and in three shares that decide what to try next (garbage collection, start-up, socket writes).
 * The .cpuprofile files stay beside the summary: Chrome DevTools (Performance → Load profile) or speedscope show
 * them as flame graphs.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { unbundleFrames } from "./bundle-frames.js";

/** The parts of V8's .cpuprofile format read here. */
export interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
    children?: number[];
  }>;
  samples: number[];
  /** Microseconds between a sample and the previous one. */
  timeDeltas: number[];
}

export interface Share {
  name: string;
  /** Fraction of the busy time, 0..1. */
  share: number;
}

export interface ProfileSummary {
  /** The service, from the path of its own code in the profile (services/<name>/dist). */
  service: string;
  pid: number;
  file: string;
  /** Sampled time not idle, in seconds (CPU time of the main thread, as the profiler saw it). */
  busySeconds: number;
  /** Of it, loading and compiling modules: time under node's module loader (start-up, and any lazy import later).
   *  The shares below are of the rest. */
  startupSeconds: number;
  /** V8's collector. */
  gc: number;
  /** Inside socket writes (the write system call: Redis commands, NATS protocol, HTTP responses). */
  socketWrites: number;
  topFunctions: Share[];
  topPackages: Share[];
}

const IDLE = "(idle)";
export const MODULE_LOADING = /^node:internal\/(modules|bootstrap)\//;
const SOCKET_WRITE = new Set(["writeUtf8String", "writeBuffer", "writev", "writeLatin1String", "writeAsciiString"]);

/** Node's main-thread profile names: CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile (thread 0 is the main one;
 *  others are worker threads such as the ESM loader hooks'). */
const PROFILE_NAME = /^CPU\.\d+\.\d+\.(\d+)\.(\d+)\.\d+\.cpuprofile$/;

/** The package a frame belongs to: the innermost node_modules package, our workspace package, or node's area. */
export function packageOf(url: string): string {
  const modules = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/g);
  if (modules) return (modules[modules.length - 1] as string).slice("node_modules/".length);
  const ours = url.match(/\/(pkg|services)\/([^/]+)\//);
  if (ours) return ours[1] === "pkg" ? `@tm/${ours[2]}` : `services/${ours[2]}`;
  const internal = url.match(/^node:(?:internal\/)?([^/]+)/);
  if (internal) return `node:${internal[1]}`;
  return url === "" ? "(native)" : url;
}

/** The service whose own code the profile ran (services/<name>/dist); "combined" wins when several appear. */
export function serviceOf(profile: CpuProfile): string | undefined {
  const names = new Set<string>();
  for (const node of profile.nodes) {
    const match = node.callFrame.url.match(/\/services\/([^/]+)\/dist\//);
    if (match) names.add(match[1] as string);
  }
  if (names.has("combined")) return "combined";
  return [...names].sort()[0];
}

export function summariseProfile(profile: CpuProfile, top = 10): Omit<ProfileSummary, "service" | "pid" | "file"> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  // Per node: whether it runs under the module loader, and the package its time is charged to. Node's own
  // frames and native ones (a builtin, a system call) are charged to the nearest library or workspace frame above
  // them, so a socket write made by ioredis counts for ioredis, not for node's stream internals.
  const underLoader = new Map<number, boolean>();
  const chargedTo = new Map<number, string>();
  const caller = new Map<number, string | undefined>();
  const stack = profile.nodes.filter((node) => !parentOf.has(node.id)).map((node) => node.id);
  while (stack.length > 0) {
    const id = stack.pop() as number;
    const node = byId.get(id);
    if (!node) continue;
    const parent = parentOf.get(id);
    const { url, functionName } = node.callFrame;
    const loading = MODULE_LOADING.test(url) || (parent !== undefined && (underLoader.get(parent) ?? false));
    underLoader.set(id, loading);
    const callerAbove = parent !== undefined ? caller.get(parent) : undefined;
    const isCode = url !== "" && !url.startsWith("node:");
    caller.set(id, isCode ? packageOf(url) : callerAbove);
    let charge: string;
    if (loading) charge = "node:modules";
    else if (url === "" && functionName.startsWith("(")) charge = functionName;
    else if (isCode) charge = packageOf(url);
    else charge = callerAbove ?? (url ? packageOf(url) : "(native)");
    chargedTo.set(id, charge);
    for (const child of node.children ?? []) stack.push(child);
  }

  // Start-up is reported as its own figure; every other share is of the time after it (the steady state a run
  // measures), so a short run's module loading does not dilute them.
  let busy = 0;
  let startup = 0;
  let gc = 0;
  let socketWrites = 0;
  const functions = new Map<string, number>();
  const packages = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const micros = profile.timeDeltas[i] ?? 0;
    if (!node || node.callFrame.functionName === IDLE) return;
    busy += micros;
    if (underLoader.get(id)) {
      startup += micros;
      return;
    }
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(garbage collector)") gc += micros;
    if (SOCKET_WRITE.has(functionName) && url === "") socketWrites += micros;
    const where = url ? ` ${url.split("/").slice(-2).join("/")}:${lineNumber + 1}` : "";
    const fn = `${functionName || "(anonymous)"}${where}`;
    functions.set(fn, (functions.get(fn) ?? 0) + micros);
    const pkg = chargedTo.get(id) ?? "(native)";
    packages.set(pkg, (packages.get(pkg) ?? 0) + micros);
  });
  const steady = busy - startup;
  const shareOf = (micros: number) => (steady > 0 ? micros / steady : 0);
  const ranked = (totals: Map<string, number>): Share[] =>
    [...totals]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, micros]) => ({ name, share: shareOf(micros) }));
  return {
    busySeconds: busy / 1e6,
    startupSeconds: startup / 1e6,
    gc: shareOf(gc),
    socketWrites: shareOf(socketWrites),
    topFunctions: ranked(functions),
    topPackages: ranked(packages),
  };
}

/** Summaries of the main-thread profiles in `dir`, busiest first. A profile that names no service is skipped. */
export function summariseProfiles(dir: string, top = 10): ProfileSummary[] {
  const summaries: ProfileSummary[] = [];
  for (const file of readdirSync(dir)) {
    const name = file.match(PROFILE_NAME);
    if (name?.[2] !== "0") continue;
    const path = join(dir, file);
    const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
    const service = serviceOf(profile);
    if (!service) continue;
    unbundleFrames(profile.nodes.map((node) => node.callFrame));
    summaries.push({ service, pid: Number(name[1]), file: path, ...summariseProfile(profile, top) });
  }
  return summaries.sort((a, b) => b.busySeconds - a.busySeconds);
}

const percent = (share: number) => `${(share * 100).toFixed(1)} %`;

export function renderProfiles(summaries: readonly ProfileSummary[], dir: string): string {
  if (summaries.length === 0) return `No service profiles in ${dir} (did the services exit cleanly?)`;
  const lines = [
    `CPU profiles (node --cpu-prof) of ${summaries.length} service process(es), in ${dir}`,
    "Busy = non-idle sampled time; start-up = under node's module loader; shares are of the busy time after it.",
    "",
  ];
  for (const s of summaries) {
    lines.push(
      `${s.service} (pid ${s.pid}): busy ${s.busySeconds.toFixed(2)} s (start-up ${s.startupSeconds.toFixed(2)} s); GC ${percent(s.gc)}, socket writes ${percent(s.socketWrites)}`,
      `  packages:  ${s.topPackages.map((p) => `${p.name} ${percent(p.share)}`).join(", ")}`,
      "  functions (self time):",
      ...s.topFunctions.map((f) => `    ${percent(f.share).padStart(7)}  ${f.name}`),
      "",
    );
  }
  lines.push("Open a .cpuprofile in Chrome DevTools (Performance → Load profile) or speedscope for its flame graph.");
  return lines.join("\n");
}

/**
 * Runs `run` with every service it starts under the profiler (testkit's spawnService puts TM_SERVICE_NODE_ARGS
 * before a service's own flags), then summarises the profiles into `<out>/profiles-<time>/summary.json`. The
 * services write their profiles as they exit, which a run awaits before it returns.
 */
export function profiled<T>(
  out: string,
  run: () => Promise<T>,
): Promise<{ result: T; dir: string; summaries: ProfileSummary[] }> {
  return withServiceProfiler(
    out,
    "profiles",
    (dir) => ({ nodeArgs: `--cpu-prof --cpu-prof-dir=${dir}` }),
    run,
    (dir) => summariseProfiles(dir),
  );
}

/**
 * The frame of every profiler of the benchmark: a fresh `<out>/<prefix>-<time>/` directory, the services' node
 * flags (and any environment of the profiler's) set for the duration of `run` and restored after it, and the
 * summaries of what the services wrote there as they exited, kept as `summary.json`.
 */
export async function withServiceProfiler<T, S>(
  out: string,
  prefix: string,
  setup: (dir: string) => { nodeArgs: string; env?: Record<string, string> },
  run: () => Promise<T>,
  summarise: (dir: string) => S[],
): Promise<{ result: T; dir: string; summaries: S[] }> {
  const dir = resolve(out, `${prefix}-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  mkdirSync(dir, { recursive: true });
  const { nodeArgs, env = {} } = setup(dir);
  const changed = { TM_SERVICE_NODE_ARGS: `${process.env.TM_SERVICE_NODE_ARGS ?? ""} ${nodeArgs}`.trim(), ...env };
  const before = Object.fromEntries(Object.keys(changed).map((name) => [name, process.env[name]]));
  Object.assign(process.env, changed);
  let result: T;
  try {
    result = await run();
  } finally {
    for (const [name, value] of Object.entries(before)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
  const summaries = summarise(dir);
  writeFileSync(join(dir, "summary.json"), `${JSON.stringify(summaries, null, 2)}\n`);
  return { result, dir, summaries };
}
