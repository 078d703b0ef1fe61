/**
 * A child process the test kit owns: started, stopped (SIGTERM), killed (SIGKILL) and restarted with the same
 * arguments. Every live one is killed when the test process exits, or is ended by SIGTERM, SIGINT or SIGHUP, so a
 * failing or cancelled test run leaves nothing behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";

const live = new Set<ManagedProcess>();
let exitHookInstalled = false;

function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const p of live) p.child?.kill("SIGKILL");
  };
  process.once("exit", killAll);
  // A test process ended by a signal (a cancelled run, a worker torn down) emits no "exit" under the default
  // handlers, and its nats-server, redis-server and services would live on. So: kill them, then, unless something
  // else in the process handles the signal, die of it as the default handler would have.
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.once(signal, () => {
      killAll();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

export interface ManagedProcessOptions {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep the last N lines of output for error messages. */
  keepLines?: number;
  /** Echo output with a prefix (for debugging). */
  echo?: boolean;
  /** Also write every line of output, time-stamped, to `<logDir>/<name>-<pid>.log` (one file per start). Default:
   *  the TM_TEST_LOG_DIR environment variable, so a suite run that fails now and then can keep what every process
   *  said, not only the last lines a failure message quotes. */
  logDir?: string;
}

export class ManagedProcess {
  child: ChildProcess | undefined;
  readonly output: string[] = [];
  #exit: Promise<number | null> | undefined;
  readonly #listeners = new Set<(line: string) => void>();

  constructor(readonly options: ManagedProcessOptions) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): this {
    if (this.running) throw new Error(`${this.options.name} is already running`);
    installExitHook();
    const child = spawn(this.options.command, this.options.args, {
      env: this.options.env ?? process.env,
      cwd: this.options.cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    live.add(this);
    const keep = this.options.keepLines ?? 200;
    const log = this.#openLog(child.pid);
    const onData = (chunk: Buffer) => {
      const at = log ? new Date().toISOString() : "";
      for (const line of chunk.toString().split("\n")) {
        if (!line) continue;
        log?.write(`${at} ${line}\n`);
        this.output.push(line);
        if (this.output.length > keep) this.output.shift();
        if (this.options.echo) process.stderr.write(`[${this.options.name}] ${line}\n`);
        for (const listener of this.#listeners) listener(line);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    // "close", not "exit": the output may still be arriving when the process has exited.
    if (log) child.once("close", () => log.end());
    this.#exit = new Promise((resolve) => {
      child.once("exit", (code) => {
        live.delete(this);
        resolve(code);
      });
      child.once("error", (error) => {
        this.output.push(`spawn error: ${error.message}`);
        live.delete(this);
        resolve(-1);
      });
    });
    return this;
  }

  #openLog(pid: number | undefined): WriteStream | undefined {
    const dir = this.options.logDir ?? process.env.TM_TEST_LOG_DIR;
    if (!dir || pid === undefined) return undefined;
    mkdirSync(dir, { recursive: true });
    return createWriteStream(join(dir, `${this.options.name}-${pid}.log`), { flags: "a" });
  }

  /** Resolves with the first output line matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs = 15_000): Promise<string> {
    const existing = this.output.find((line) => pattern.test(line));
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners.delete(listener);
        reject(new Error(`${this.options.name}: no line matching ${pattern} within ${timeoutMs} ms\n${this.tail()}`));
      }, timeoutMs);
      const listener = (line: string) => {
        if (pattern.test(line)) {
          clearTimeout(timer);
          this.#listeners.delete(listener);
          resolve(line);
        }
      };
      this.#listeners.add(listener);
    });
  }

  onLine(listener: (line: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves with the exit code once the process has exited. */
  exited(): Promise<number | null> {
    return this.#exit ?? Promise.resolve(null);
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child?.kill("SIGTERM");
    const timer = setTimeout(() => this.child?.kill("SIGKILL"), graceMs);
    await this.exited();
    clearTimeout(timer);
  }

  /** SIGKILL: the process gets no chance to clean up (a crash). */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child?.kill("SIGKILL");
    await this.exited();
  }

  tail(lines = 40): string {
    return this.output.slice(-lines).join("\n");
  }
}
