/**
 * Throttles a task's progress reports: at most one per `intervalMs`, and only when the integer percent changed.
 * A report dropped by the throttle is not replayed later: the next one (or the terminal status) supersedes it.
 */
export class ProgressThrottle {
  #lastPercent = 0;
  #lastAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly publish: (percent: number) => void,
    private readonly intervalMs = 250,
    private readonly now: () => number = Date.now,
  ) {}

  report(percent: number): void {
    if (!Number.isFinite(percent)) return;
    const rounded = Math.min(100, Math.max(0, Math.floor(percent)));
    const at = this.now();
    if (rounded === this.#lastPercent || at - this.#lastAt < this.intervalMs) return;
    this.#lastPercent = rounded;
    this.#lastAt = at;
    this.publish(rounded);
  }
}
