/**
 * `--alloc-profile`: every service the run starts records where it allocates (V8's sampling heap profiler, freed
 * objects included: bench/hops/alloc-profile.mjs, preloaded), and each profile is summarised when the run ends:
 * how much each service allocated after start-up, by package and by function. Garbage is what the collector
 * spends its time on (16–41 % of the services' busy time in their CPU profiles), so this says where it comes from.
 * The .heapprofile files stay beside the summary (Chrome DevTools: Memory → Load profile).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { unbundleFrames } from "./bundle-frames.js";
import { MODULE_LOADING, packageOf, type Share, withServiceProfiler } from "./profile.js";

/** The parts of V8's sampling heap profile format read here. */
export interface HeapProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  /** Bytes allocated (sampled) in this frame itself. */
  selfSize: number;
  children: HeapProfileNode[];
}

export interface HeapProfile {
  head: HeapProfileNode;
}

export interface AllocSummary {
  service: string;
  pid: number;
  file: string;
  /** Bytes allocated after start-up (the steady state a run measures), in MB. */
  allocatedMb: number;
  /** Bytes allocated while loading modules (start-up, and any lazy import later), in MB. */
  startupMb: number;
  /** Set by the caller when it knows how many messages or tasks the process handled: allocatedMb over that. */
  kbPerItem?: number;
  topFunctions: Share[];
  topPackages: Share[];
}

const ALLOC_PROFILE_NAME = /^Heap\.(\d+)\.heapprofile$/;
const PRELOAD = fileURLToPath(new URL("../hops/alloc-profile.mjs", import.meta.url));
/** Frames that only run while modules load: node's loader, and the require/import hooks OpenTelemetry installs. */
const LOADING_PACKAGES = new Set(["require-in-the-middle", "import-in-the-middle"]);
/** The profiler's own work (the inspector session, the preload): not the service's. */
const PROFILER = /^node:inspector$|\/hops\/alloc-profile\.mjs$/;

/** The service whose own code the profile ran (services/<name>/dist); "combined" wins when several appear. */
export function heapServiceOf(profile: HeapProfile): string | undefined {
  const names = new Set<string>();
  const stack = [profile.head];
  while (stack.length > 0) {
    const node = stack.pop() as HeapProfileNode;
    const match = node.callFrame.url.match(/\/services\/([^/]+)\/dist\//);
    if (match) names.add(match[1] as string);
    stack.push(...node.children);
  }
  if (names.has("combined")) return "combined";
  return [...names].sort()[0];
}

function framesOf(profile: HeapProfile): HeapProfileNode["callFrame"][] {
  const frames: HeapProfileNode["callFrame"][] = [];
  const stack = [profile.head];
  while (stack.length > 0) {
    const node = stack.pop() as HeapProfileNode;
    frames.push(node.callFrame);
    stack.push(...node.children);
  }
  return frames;
}

export function summariseHeapProfile(
  profile: HeapProfile,
  top = 10,
): Omit<AllocSummary, "service" | "pid" | "file" | "kbPerItem"> {
  let steady = 0;
  let startup = 0;
  const functions = new Map<string, number>();
  const packages = new Map<string, number>();
  const add = (totals: Map<string, number>, key: string, bytes: number) =>
    totals.set(key, (totals.get(key) ?? 0) + bytes);
  // Depth first, carrying whether we are under the module loader and the nearest library or workspace frame above:
  // node's own and native frames (a Map, a Promise, a string built by JSON.stringify) are charged to the code that
  // called them, as in the CPU summary.
  const stack: Array<{ node: HeapProfileNode; loading: boolean; caller: string | undefined }> = [
    { node: profile.head, loading: false, caller: undefined },
  ];
  while (stack.length > 0) {
    const { node, loading: above, caller: callerAbove } = stack.pop() as (typeof stack)[number];
    const { functionName, url, lineNumber } = node.callFrame;
    if (PROFILER.test(url)) continue;
    const isCode = url !== "" && !url.startsWith("node:");
    const pkg = isCode ? packageOf(url) : undefined;
    const loading = above || MODULE_LOADING.test(url) || (pkg !== undefined && LOADING_PACKAGES.has(pkg));
    const caller = pkg ?? callerAbove;
    if (node.selfSize > 0) {
      if (loading) startup += node.selfSize;
      else {
        steady += node.selfSize;
        const where = url ? ` ${url.split("/").slice(-2).join("/")}:${lineNumber + 1}` : "";
        add(functions, `${functionName || "(anonymous)"}${where}`, node.selfSize);
        add(packages, pkg ?? callerAbove ?? (url ? packageOf(url) : "(native)"), node.selfSize);
      }
    }
    for (const child of node.children) stack.push({ node: child, loading, caller });
  }
  const ranked = (totals: Map<string, number>): Share[] =>
    [...totals]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, bytes]) => ({ name, share: steady > 0 ? bytes / steady : 0 }));
  return {
    allocatedMb: steady / 1e6,
    startupMb: startup / 1e6,
    topFunctions: ranked(functions),
    topPackages: ranked(packages),
  };
}

/** Summaries of the heap profiles in `dir`, the largest allocator first. A profile that names no service is
 *  skipped. */
export function summariseHeapProfiles(dir: string, top = 10): AllocSummary[] {
  const summaries: AllocSummary[] = [];
  for (const file of readdirSync(dir)) {
    const name = file.match(ALLOC_PROFILE_NAME);
    if (!name) continue;
    const path = join(dir, file);
    const profile = JSON.parse(readFileSync(path, "utf8")) as HeapProfile;
    const service = heapServiceOf(profile);
    if (!service) continue;
    unbundleFrames(framesOf(profile));
    summaries.push({ service, pid: Number(name[1]), file: path, ...summariseHeapProfile(profile, top) });
  }
  return summaries.sort((a, b) => b.allocatedMb - a.allocatedMb);
}

const percent = (share: number) => `${(share * 100).toFixed(1)} %`;

export function renderAllocProfiles(summaries: readonly AllocSummary[], dir: string, itemName = "item"): string {
  if (summaries.length === 0) return `No service heap profiles in ${dir} (did the services exit cleanly?)`;
  const lines = [
    `Allocation profiles (V8's sampling heap profiler, freed objects included) of ${summaries.length} service ` +
      `process(es), in ${dir}`,
    "Allocated = sampled bytes after start-up (module loading set apart); shares are of it.",
    "",
  ];
  for (const s of summaries) {
    const perItem = s.kbPerItem !== undefined ? ` (~${s.kbPerItem.toFixed(1)} KB per ${itemName})` : "";
    lines.push(
      `${s.service} (pid ${s.pid}): allocated ${s.allocatedMb.toFixed(1)} MB${perItem}; start-up ${s.startupMb.toFixed(1)} MB`,
      `  packages:  ${s.topPackages.map((p) => `${p.name} ${percent(p.share)}`).join(", ")}`,
      "  functions (self):",
      ...s.topFunctions.map((f) => `    ${percent(f.share).padStart(7)}  ${f.name}`),
      "",
    );
  }
  lines.push("Open a .heapprofile in Chrome DevTools (Memory → Load profile) for the allocation tree.");
  return lines.join("\n");
}

/**
 * Runs `run` with every service it starts recording its allocations (testkit's spawnService puts
 * TM_SERVICE_NODE_ARGS before a service's own flags; the preload reads TM_ALLOC_PROFILE_DIR from the environment the
 * service inherits), then summarises the profiles into `<out>/alloc-<time>/summary.json`. The services write their
 * profiles as they exit, which a run awaits before it returns.
 */
export async function allocProfiled<T>(
  out: string,
  run: () => Promise<T>,
): Promise<{ result: T; dir: string; summaries: AllocSummary[] }> {
  if (/\s/.test(PRELOAD))
    throw new Error(
      `--alloc-profile cannot preload from a path with spaces (node flags are split on them): ${PRELOAD}`,
    );
  return withServiceProfiler(
    out,
    "alloc",
    (dir) => ({ nodeArgs: `--import=${PRELOAD}`, env: { TM_ALLOC_PROFILE_DIR: dir } }),
    run,
    (dir) => summariseHeapProfiles(dir),
  );
}
