/**
 * Integration tests of `pnpm start` (scripts/stack.mjs), each running the real script with NATS_URL / REDIS_URL
 * unset, so it starts its own nats-server and redis-server (on 4222 / 6379 when free, otherwise on ports the OS
 * picks: a shared server on the default ports is never used). The services use the stack's fixed ports (50051,
 * 8080-8088, 8090), which must be free; the tests of this file run one after the other. Needs `pnpm build` first.
 *
 * - The smoke test: with STACK_EXIT_AFTER_DEMO=1 the stack runs `taskctl demo` through the real pipeline, stops
 *   everything and exits with the demo's code. Short FLOW_* retry delays (passed through to the services) keep the
 *   demo's `fail` task from taking a minute.
 * - The supervision test: the worker process is SIGKILLed twice under the running stack; the stack reports each
 *   crash with its restart delay (1 s, then 2 s), restarts it no sooner, reports the restarted worker ready again
 *   (its /readyz answers 200) and a task submitted afterwards SUCCEEDS; SIGTERM to the stack then ends every process
 *   it started.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createTaskClient, Priority } from "@tm/proto";
import { expect, test } from "vitest";
import { isPortFree, REQUIRED_PORTS } from "../scripts/lib/stack-lib.mjs";
import { collectStream, stateNames } from "./support/pipeline.js";

const root = fileURLToPath(new URL("..", import.meta.url));

/** The environment `pnpm start` would get, without NATS_URL / REDIS_URL, plus `extra`. */
function stackEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NATS_URL: _nats, REDIS_URL: _redis, ...env } = process.env;
  return { ...env, NO_COLOR: "1", ...extra };
}

test("pnpm start runs the demo through every service and stops cleanly", { timeout: 90_000 }, async () => {
  const child = spawn(process.execPath, ["scripts/stack.mjs"], {
    cwd: root,
    env: stackEnv({ STACK_EXIT_AFTER_DEMO: "1", LOG_LEVEL: "warn", FLOW_RETRY_DELAYS_MS: "100,200,300,400,500" }),
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const exitCode = await new Promise<number | null>((resolve) => child.on("close", resolve));

  expect(output, output).toContain("all services are ready");
  expect(output).toMatch(/SUCCEEDED +11\n/);
  expect(output).toMatch(/FAILED +1\n/);
  expect(output).toContain("every task ended as expected");
  expect(exitCode, output).toBe(0);
  // Everything it started is gone: the fixed ports are free again.
  for (const { port } of REQUIRED_PORTS) expect(await isPortFree(port), `port ${port}`).toBe(true);
});

/** A process as /proc shows it; `start` (clock ticks since boot) tells it apart from a later one with its pid. */
interface Proc {
  pid: number;
  ppid: number;
  start: number;
  state: string;
  cwd: string;
  cmdline: string;
}

function readProc(pid: number): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so split after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    let cwd = "";
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // exited meanwhile, or not ours to read
    }
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
    return { pid, ppid: Number(fields[1]), start: Number(fields[19]), state: fields[0] ?? "?", cwd, cmdline };
  } catch {
    return undefined;
  }
}

/** The processes whose parent is `ppid` (the stack's own children: nats-server, redis-server, the services). */
function childrenOf(ppid: number): Proc[] {
  const children: Proc[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const proc = readProc(Number(name));
    if (proc?.ppid === ppid) children.push(proc);
  }
  return children;
}

/** Still running: the same process (same start time) exists and is not a zombie. */
function isAlive(proc: Proc): boolean {
  const now = readProc(proc.pid);
  return now !== undefined && now.start === proc.start && now.state !== "Z";
}

/** Seconds since boot: the clock of a start time in /proc/<pid>/stat (which counts USER_HZ ticks, 100 a second). */
function uptimeSeconds(): number {
  return Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
}

/** The running stack: its output line by line, and a wait for a line that resolves when it is printed. */
function startStack(env: NodeJS.ProcessEnv) {
  const child: ChildProcess = spawn(process.execPath, ["scripts/stack.mjs"], { cwd: root, env });
  const lines: string[] = [];
  const waiters = new Set<{ check: () => boolean; fail: (error: Error) => void }>();
  let closed = false;
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      closed = true;
      for (const waiter of waiters) waiter.fail(new Error(`the stack exited (code ${code})`));
      resolve(code);
    }),
  );
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream }).on("line", (line) => {
      lines.push(line);
      for (const waiter of waiters) waiter.check();
    });
  }
  const output = () => lines.join("\n");
  /** Every process the stack was seen to start, for the cleanup of a failed test. */
  const seen = new Map<number, Proc>();
  /** The stack's live children (nats-server, redis-server, the services) as /proc shows them now. */
  function children(): Proc[] {
    const live = childrenOf(child.pid as number).filter(isAlive);
    for (const proc of live) seen.set(proc.pid, proc);
    return live;
  }

  /** The first line from index `from` on that matches `pattern`; rejects after `timeoutMs` or if the stack ends. */
  function waitForLine(pattern: RegExp, timeoutMs: number, from = 0): Promise<{ line: string; index: number }> {
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          const index = lines.findIndex((line, i) => i >= from && pattern.test(line));
          if (index < 0) return false;
          settle();
          resolve({ line: lines[index] as string, index });
          return true;
        },
        fail: (error: Error) => {
          settle();
          reject(new Error(`waiting for ${pattern}: ${error.message}\n--- stack output ---\n${output()}`));
        },
      };
      const timer = setTimeout(() => waiter.fail(new Error(`not printed within ${timeoutMs} ms`)), timeoutMs);
      const settle = () => {
        clearTimeout(timer);
        waiters.delete(waiter);
      };
      waiters.add(waiter);
      if (!waiter.check() && closed) waiter.fail(new Error("the stack had already exited"));
    });
  }

  /**
   * SIGTERM and wait. If the stack does not end in time, SIGKILL it and its children; in any case SIGKILL whatever
   * it was seen to start that still runs (a failed test must not leave services on the fixed ports).
   */
  async function stop(timeoutMs: number): Promise<number | null> {
    if (!closed) children();
    if (!closed) child.kill("SIGTERM");
    const timedOut = Symbol("timed out");
    const result = await Promise.race([
      exited,
      new Promise<typeof timedOut>((resolve) => setTimeout(() => resolve(timedOut), timeoutMs)),
    ]);
    if (result === timedOut) {
      children();
      child.kill("SIGKILL");
      await exited;
    }
    const leftOver = [...seen.values()].filter(isAlive);
    for (const proc of leftOver) process.kill(proc.pid, "SIGKILL");
    if (result === timedOut) throw new Error(`the stack did not stop within ${timeoutMs} ms of SIGTERM\n${output()}`);
    if (leftOver.length > 0) {
      const list = leftOver.map((proc) => `${proc.pid} ${proc.cwd}: ${proc.cmdline}`).join("\n");
      throw new Error(
        `the stack exited but left these running (now killed):\n${list}\n--- stack output ---\n${output()}`,
      );
    }
    return result;
  }

  return { child, lines, output, children, waitForLine, stop };
}

const GATEWAY_URL = "http://127.0.0.1:50051";
const WORKER_CWD = join(root, "services", "worker");
const WORKER_READY_URL = "http://127.0.0.1:8085/readyz";
const READY_AGAIN = /^\[stack\s*\] worker ready again after (\d+) ms$/;

test.skipIf(process.platform !== "linux")(
  "pnpm start reports a crashed worker, restarts it with backoff, keeps the pipeline working and stops everything",
  { timeout: 120_000 },
  async () => {
    // The test waits on the stack's own lines (printed whatever LOG_LEVEL is); warn keeps the services quiet.
    const stack = startStack(stackEnv({ STACK_NO_DEMO: "1", LOG_LEVEL: "warn" }));
    const stackPid = stack.child.pid as number;
    try {
      await stack.waitForLine(/^\[stack\s*\] all services are ready$/, 60_000);

      const workerProcess = () => {
        const workers = stack.children().filter((proc) => proc.cwd === WORKER_CWD);
        expect(workers, stack.output()).toHaveLength(1);
        return workers[0] as Proc;
      };

      // Kill the worker twice: the second crash follows the first restart within the 60 s reset window, so its
      // restart waits twice as long.
      let worker = workerProcess();
      let from = stack.lines.length;
      for (const [crash, delayS] of [
        [1, 1],
        [2, 2],
      ] as const) {
        process.kill(worker.pid, "SIGKILL");
        const report = await stack.waitForLine(/^\[stack\s*\] worker exited /, 10_000, from);
        const reportSeenAt = uptimeSeconds();
        expect(report.line).toMatch(
          new RegExp(
            `^\\[stack\\s*\\] worker exited \\(SIGKILL\\) after \\d+\\.\\d s; ` +
              `restarting in ${delayS} s \\(crash ${crash} in a row\\)$`,
          ),
        );
        expect(isAlive(worker)).toBe(false);

        // The stack reports the restarted worker ready again once its /readyz answers 200.
        const ready = await stack.waitForLine(READY_AGAIN, 35_000, report.index);
        const readySeenAt = uptimeSeconds();
        expect((await fetch(WORKER_READY_URL)).status, stack.output()).toBe(200);
        const restarted = workerProcess();
        expect(restarted.pid).not.toBe(worker.pid);
        expect(restarted.ppid).toBe(stackPid);
        // Not restarted at once: the new process began no sooner than about the announced delay after the report
        // (the delay runs from just before the report is printed; the slack covers the pipe and a busy machine).
        const restartedAfterS = restarted.start / 100 - reportSeenAt;
        expect(restartedAfterS, `restarted ${restartedAfterS} s after the report`).toBeGreaterThanOrEqual(delayS - 0.5);
        // Counted from the restart, not from the crash: no longer than the new process had been running when the
        // line was seen (the slack covers the spawn and the 10 ms ticks of the start time, not the 1-2 s delay).
        const readyAfterS = Number(READY_AGAIN.exec(ready.line)?.[1]) / 1000;
        const runningS = readySeenAt - restarted.start / 100;
        expect(readyAfterS, `ready again after ${readyAfterS} s, running ${runningS} s`).toBeLessThanOrEqual(
          runningS + 0.5,
        );
        worker = restarted;
        from = ready.index + 1;
      }
      // Only the worker crashed: no other exit was reported, and no other service was reported ready again.
      expect(stack.lines.filter((line) => /^\[stack\s*\] .* exited /.test(line))).toHaveLength(2);
      expect(stack.lines.filter((line) => /^\[stack\s*\] .* ready again /.test(line))).toHaveLength(2);

      // The pipeline still works end to end through the restarted worker.
      const client = createTaskClient({ baseUrl: GATEWAY_URL });
      const payload = { afterRestart: true };
      const { taskId } = await client.submitTask({ type: "echo", payload, priority: Priority.HIGH });
      const states = stateNames(await collectStream(client, taskId, 20_000));
      expect(states.at(-1), `${states.join(" → ")}\n${stack.output()}`).toBe("SUCCEEDED");
      // (Not "RUNNING was seen": an echo task can finish before the stream opens, which then starts at SUCCEEDED.
      // The stored result proves a worker ran it, and the restarted worker is the only one.)
      const result = await fetch(`http://127.0.0.1:8082/results/${taskId}`);
      expect(result.status).toBe(200);
      expect(((await result.json()) as { output: unknown }).output).toEqual(payload);

      // SIGTERM to the stack ends everything it started: all nine services (the restarted worker among them),
      // nats-server and redis-server; it exits 0, removes its temporary directories and frees the fixed ports.
      const processes = stack.children();
      const commands = processes.map((proc) => proc.cmdline);
      expect(commands, stack.output()).toContainEqual(expect.stringContaining("nats-server"));
      expect(commands).toContainEqual(expect.stringContaining("redis-server"));
      expect(commands.filter((command) => command.endsWith("dist/bundle/index.js"))).toHaveLength(9);
      expect(processes.map((proc) => proc.pid)).toContain(worker.pid);
      // nats-server's store directory (in its command line) and redis-server's working directory.
      const tempDirs = [
        ...commands.flatMap((command) => command.match(/\/\S*tm-stack-nats-\S+/g) ?? []),
        ...processes.map((proc) => proc.cwd).filter((cwd) => cwd.includes("tm-stack-redis-")),
      ];
      expect(tempDirs).toHaveLength(2);
      const exitCode = await stack.stop(30_000);
      expect(exitCode, stack.output()).toBe(0);
      expect(stack.output()).toContain("SIGTERM: stopping");
      expect(processes.filter(isAlive), stack.output()).toEqual([]);
      for (const dir of tempDirs) expect(existsSync(dir), dir).toBe(false);
      for (const { port } of REQUIRED_PORTS) expect(await isPortFree(port), `port ${port}`).toBe(true);
    } finally {
      await stack.stop(30_000).catch(() => undefined);
    }
  },
);
