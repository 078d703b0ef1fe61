/**
 * `--drain SERVICE --instructions`: the consumer runs under valgrind's callgrind, which counts the instructions a
 * process executes (every thread: V8's compiler and collector threads too). Unlike CPU time on a VM whose speed drifts
 * by 1.5–2× within an hour, the count does not depend on what else the machine is doing, so a change of a few per
 * cent to a service's per-message work shows in one pair of runs. It counts user-space instructions only: system
 * calls, cache misses and waits are not in it (the CPU figures of a run without it keep those).
 *
 * Counting starts switched off (`--instr-atstart=no`: start-up and warm-up run ~5× slower instead of ~75×) and is
 * switched on for exactly the measured batch with `callgrind_control`; the dump written then holds the total.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The TM_SERVICE_WRAPPER that runs a process under callgrind, its profiles written into `outDir` (which must exist). */
export function callgrindWrapper(outDir: string): string {
  return [
    "valgrind",
    "--tool=callgrind",
    "--instr-atstart=no",
    // V8 writes and rewrites machine code on its heap: without this valgrind would run stale translations of it.
    "--smc-check=all-non-file",
    `--callgrind-out-file=${join(outDir, "callgrind.out.%p")}`,
  ].join(" ");
}

/** Whether valgrind can be run here (it is a Debian package; the option says so when it is missing). */
export async function valgrindAvailable(): Promise<boolean> {
  return run("valgrind", ["--version"]).then(
    () => true,
    () => false,
  );
}

/** Switches counting on in the process `pid` runs under callgrind. */
export async function startCounting(pid: number): Promise<void> {
  await control(pid, "--instr=on");
}

/**
 * Switches counting off and returns the instructions counted since `startCounting`, by kind: callgrind dumps what it
 * counted into a numbered file beside the profile, whose `totals:` line is the count.
 */
export async function stopCounting(pid: number, outDir: string): Promise<InstructionShares> {
  const before = new Set(dumpsOf(pid, outDir));
  await control(pid, "--dump=measured batch");
  await control(pid, "--instr=off");
  const written = dumpsOf(pid, outDir).filter((file) => !before.has(file));
  if (written.length !== 1) throw new Error(`callgrind wrote ${written.length} dumps for pid ${pid} in ${outDir}`);
  const profile = readFileSync(join(outDir, written[0] as string), "utf8");
  const shares = instructionShares(profile);
  const stated = totalOf(profile);
  if (shares.total !== stated)
    throw new Error(`callgrind output: the cost lines sum to ${shares.total}, not ${stated}`);
  return shares;
}

/** Where a process's instructions went, by the kind of code that ran them. */
export interface InstructionShares {
  total: number;
  /** Code V8 generated (JIT code of every tier) and its builtins: the JavaScript itself. */
  javascript: number;
  /** V8's garbage collector, on the main thread and its helper threads. */
  gc: number;
  /** V8's parsers and compilers (baseline, Maglev, TurboFan): code still being compiled or recompiled. */
  compiling: number;
  /** The rest: V8's runtime (JSON, strings, property lookups that missed), node and libuv, libc. */
  other: number;
}

const JAVASCRIPT = /^(0x[0-9a-f]+|Builtins_)/;
const COMPILING =
  /v8::internal::(compiler|maglev|baseline|turboshaft|interpreter)::|v8::internal::(Zone|Parser|Scanner|Compiler|OptimizingCompileDispatcher|OptimizedCompilationJob|AstValueFactory|ParseInfo)\b/;
const GC =
  /^heap::|cppgc::|v8::internal::(Scaveng|MarkCompact|MinorMark|[A-Za-z]*Marking|[A-Za-z]*Sweeper|Evacuat|PretenuringHandler|RememberedSet|SlotSet|MemoryAllocator|MemoryChunk|BasicMemoryChunk|PagedSpace|SemiSpace|NewSpace|LargeObjectSpace|GCTracer|Heap::|LocalHeap|Safepoint|IsolateSafepoint)|IterateObjectCache|BodyDescriptorBase::IteratePointers<v8::internal::(Scavenge|Marking)|HeapObject::SizeFromMap/;

/**
 * Sums a callgrind output file's self cost per function and sorts it into InstructionShares by the function's name
 * (approximate: a helper a compiler or the collector calls, such as a hash map's, counts as "other").
 * In the format, `fn=` starts a function's cost lines and a `calls=` line is followed by the inclusive cost of that
 * call, which is the callee's and not counted here; names are given once with an id, `(12) name`, then as `(12)`.
 */
export function instructionShares(profile: string): InstructionShares {
  const shares: InstructionShares = { total: 0, javascript: 0, gc: 0, compiling: 0, other: 0 };
  const names = new Map<string, string>();
  const nameOf = (spec: string): string => {
    const compressed = spec.match(/^\((\d+)\)\s*(.*)$/);
    if (!compressed) return spec;
    const [, id = "", name = ""] = compressed;
    if (name) names.set(id, name);
    return names.get(id) ?? name;
  };
  let kind: keyof Omit<InstructionShares, "total"> = "other";
  let skipNext = false;
  for (const line of profile.split("\n")) {
    if (line.startsWith("fn=")) {
      const name = nameOf(line.slice(3));
      kind = JAVASCRIPT.test(name) ? "javascript" : COMPILING.test(name) ? "compiling" : GC.test(name) ? "gc" : "other";
    } else if (line.startsWith("cfn=")) nameOf(line.slice(4));
    else if (line.startsWith("calls=")) skipNext = true;
    else if (/^[0-9+*-]/.test(line)) {
      if (skipNext) {
        skipNext = false;
        continue;
      }
      const cost = Number(line.trim().split(/\s+/)[1] ?? 0);
      shares[kind] += cost;
      shares.total += cost;
    }
  }
  return shares;
}

/** The instruction count a callgrind output file states. */
export function totalOf(profile: string): number {
  // `totals:` (at the end) is the sum of the file's cost lines; valgrind 3.19's `summary:` (in the header) is wrong in
  // every dump after the first (it underflows), so it is read only from a file without `totals:`.
  const line = profile.match(/^totals:\s*(\d+)/m) ?? profile.match(/^summary:\s*(\d+)/m);
  if (!line) throw new Error("no totals: or summary: line in the callgrind output");
  return Number(line[1]);
}

function dumpsOf(pid: number, outDir: string): string[] {
  const prefix = `callgrind.out.${pid}.`;
  return readdirSync(outDir).filter((file) => file.startsWith(prefix));
}

async function control(pid: number, command: string): Promise<void> {
  // callgrind looks for commands between blocks of the program's code: an idle service answers at its next timer or
  // message, so allow for a wait.
  await run("callgrind_control", [command, String(pid)], { timeout: 120_000 });
}
