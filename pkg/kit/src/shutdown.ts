/**
 * Ordered, idempotent, error-tolerant shutdown: each step runs in order with its own error handling, so one
 * failing step never skips the rest; a second signal does not start a second shutdown.
 */
import type { Logger } from "./logger.js";

export interface ShutdownStep {
  name: string;
  run: () => Promise<unknown> | unknown;
}

/** When a shutdown step still running is logged. */
const SLOW_STEP_MS = 5_000;

export class Shutdown {
  readonly #steps: ShutdownStep[] = [];
  #closing: Promise<void> | undefined;

  constructor(private readonly log: Logger) {}

  get started(): boolean {
    return this.#closing !== undefined;
  }

  /** Adds a step; steps run in the order added (add "stop taking work" first, "close connections" last). */
  add(name: string, run: ShutdownStep["run"]): void {
    this.#steps.push({ name, run });
  }

  run(reason: string): Promise<void> {
    this.#closing ??= (async () => {
      this.log.info({ reason }, "shutting down");
      for (const step of this.#steps) {
        // A step still running after a while is named, so a shutdown that hits its hard deadline says where it hung
        // (the services log at warn in production and in the tests; the steps themselves are quiet).
        const slow = setTimeout(
          () => this.log.warn({ step: step.name, afterMs: SLOW_STEP_MS }, "shutdown step still running"),
          SLOW_STEP_MS,
        );
        slow.unref();
        try {
          await step.run();
        } catch (error) {
          this.log.warn({ err: error, step: step.name }, "shutdown step failed; continuing");
        } finally {
          clearTimeout(slow);
        }
      }
      this.log.info("shut down");
    })();
    return this.#closing;
  }

  /** SIGTERM / SIGINT run the shutdown, then exit; a hard deadline guards against a hung step. */
  installSignalHandlers(hardDeadlineMs: number): void {
    this.#hardDeadlineMs = hardDeadlineMs;
    const onSignal = (signal: NodeJS.Signals) => this.exitAfterRun(signal, 0);
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  }

  #hardDeadlineMs = 30_000;

  /** Runs the shutdown, then exits the process with `code` (1 if it takes longer than the hard deadline). */
  exitAfterRun(reason: string, code: number): void {
    const timer = setTimeout(() => {
      this.log.error({ hardDeadlineMs: this.#hardDeadlineMs }, "shutdown took too long; exiting");
      process.exit(1);
    }, this.#hardDeadlineMs);
    timer.unref();
    void this.run(reason).then(() => process.exit(code));
  }
}
