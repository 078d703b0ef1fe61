/**
 * A handler's progress reports: checked (a bad message or details is the handler's bug, named at the call), then
 * throttled to at most one publication per `intervalMs`. A report that comes too soon is kept and published when the
 * interval ends unless a later one replaces it first, so the last report of a quiet stretch ("uploading part 7") is
 * never lost; one that says nothing new (same percent, message and details) is not published at all. The percent
 * never goes back within an attempt: the status version orders updates by it (pkg/flow lifecycle.ts), so a lower one
 * is reported as the highest so far.
 */
import type { ProgressReport } from "@tm/flow";
// The limits alone (not the schemas): this module is also in the handler threads' bundle (handler-thread.ts).
import { SIZE_LIMITS } from "@tm/flow/size-limits";

export interface ProgressUpdate {
  percent: number;
  report: ProgressReport;
}

/** The report's message and details as JSON text ("" when none); a RangeError naming what cannot be carried. */
export function checkedReport(message: unknown, details: unknown): { message: string; detailsJson: string } {
  if (message !== undefined && typeof message !== "string")
    throw new RangeError("reportProgress: message must be a string");
  if (typeof message === "string" && message.length > SIZE_LIMITS.progressMessageChars)
    throw new RangeError(
      `reportProgress: message is ${message.length} characters, over ${SIZE_LIMITS.progressMessageChars}`,
    );
  if (details === undefined) return { message: message ?? "", detailsJson: "" };
  if (details === null || typeof details !== "object" || Array.isArray(details))
    throw new RangeError("reportProgress: details must be a JSON object");
  let detailsJson: string;
  try {
    detailsJson = JSON.stringify(details);
  } catch (error) {
    throw new RangeError(`reportProgress: details cannot be written as JSON (${(error as Error).message})`);
  }
  const bytes = Buffer.byteLength(detailsJson);
  if (bytes > SIZE_LIMITS.progressDetailsBytes)
    throw new RangeError(
      `reportProgress: details are ${bytes} bytes of JSON, over ${SIZE_LIMITS.progressDetailsBytes}`,
    );
  return { message: message ?? "", detailsJson };
}

/** Report numbers set aside for each run of an attempt: at 4 a second, 40 minutes of reports. */
export const REPORTS_PER_RUN = 10_000;

export class ProgressThrottle {
  #percent = 0;
  #said = "";
  #reports = 0;
  #lastAt = Number.NEGATIVE_INFINITY;
  /** A report that came too soon, and what it says, published when the interval ends. */
  #pending: { update: ProgressUpdate; said: string } | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #last: ProgressUpdate | undefined;

  /** `firstReport`: the number before the first report's. A run of an attempt resumed after a rate-limit wait
   *  (ctx.deferrals) numbers its reports after the earlier runs' (REPORTS_PER_RUN each), so that a report of the
   *  same version is neither older than theirs nor taken for one of them by the stream's deduplication. */
  constructor(
    private readonly publish: (update: ProgressUpdate) => void,
    private readonly intervalMs = 250,
    private readonly now: () => number = Date.now,
    firstReport = 0,
  ) {
    this.#reports = firstReport;
  }

  /** Throws a RangeError naming the problem when the message or details cannot be carried; NaN is ignored. */
  report(percent: number, message?: string, details?: Record<string, unknown>): void {
    // Details are copied as JSON now: the handler may change its object after the call.
    const { message: text, detailsJson } = checkedReport(message, details);
    if (this.#stopped || !Number.isFinite(percent)) return;
    const rounded = Math.max(this.#percent, Math.min(100, Math.max(0, Math.floor(percent))));
    const said = `${text}\u0000${detailsJson}`;
    if (rounded === this.#percent && said === this.#said) {
      // Back to what was last published: nothing waiting needs to go out.
      this.#pending = undefined;
      return;
    }
    const update: ProgressUpdate = {
      percent: rounded,
      report: {
        number: 0, // numbered when published
        ...(text ? { message: text } : {}),
        ...(detailsJson ? { details: JSON.parse(detailsJson) as Record<string, unknown> } : {}),
      },
    };
    const waitMs = this.#lastAt + this.intervalMs - this.now();
    if (waitMs <= 0) {
      this.#send(update, said);
      return;
    }
    this.#pending = { update, said };
    this.#timer ??= setTimeout(() => this.#flush(), waitMs);
  }

  /** What the handler last said, published or still waiting (numbered after the last published); undefined before
   *  its first report. Repeated by the attempt's failure (its RUNNING, or FAILED): where it got to. */
  lastSaid(): ProgressUpdate | undefined {
    if (this.#pending) {
      const { update } = this.#pending;
      return { percent: update.percent, report: { ...update.report, number: this.#reports + 1 } };
    }
    return this.#last;
  }

  /** The attempt ended: a report still waiting is dropped (the attempt's next status supersedes it). */
  stop(): void {
    this.#stopped = true;
    this.#pending = undefined;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #flush(): void {
    this.#timer = undefined;
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending && !this.#stopped) this.#send(pending.update, pending.said);
  }

  #send(update: ProgressUpdate, said: string): void {
    this.#percent = update.percent;
    this.#said = said;
    this.#lastAt = this.now();
    this.#reports += 1;
    update.report.number = this.#reports;
    this.#last = update;
    this.publish(update);
  }
}
