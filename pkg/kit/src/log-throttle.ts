/**
 * One warning per interval from a place that fails over and over (a Redis outage retried every 250 ms, a reconnect
 * loop, a caller retrying a refused call): the first goes through, those within `intervalMs` of it are counted, and
 * the next one let through says how many were held back, so the log keeps the rate without the flood. Keyed, for one
 * warning per schedule or per task type.
 */
export class LogThrottle {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #last = new Map<string, { at: number; heldBack: number }>();

  constructor(intervalMs: number, now: () => number = Date.now) {
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** `undefined`: hold this warning back. A number: log it; that many were held back since the last one logged. */
  pass(key = ""): number | undefined {
    const now = this.#now();
    const last = this.#last.get(key);
    if (last && now - last.at < this.#intervalMs) {
      last.heldBack++;
      return undefined;
    }
    this.#last.set(key, { at: now, heldBack: 0 });
    return last?.heldBack ?? 0;
  }

  /** The trouble behind `key` is over: its next warning goes through at once, and the key is forgotten. */
  reset(key = ""): void {
    this.#last.delete(key);
  }
}
