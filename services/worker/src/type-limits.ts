/**
 * Per-type limits on starting tasks, consulted by the dispatcher before it starts a buffered delivery:
 *
 * - concurrency (WORKER_TYPE_CONCURRENCY): at most N tasks of the type run at once in this worker (Celery's
 *   per-worker limits, Temporal's per-worker activity slots): for a handler that needs a scarce local resource.
 * - rate (WORKER_TYPE_RATES): at most N starts per second / minute / hour across every worker (BullMQ's and Temporal's
 *   global rate limits): for a handler that calls an API with a quota. Each start reserves its turn in Redis
 *   (`reserveTypeStart`, GCRA) and the delivery waits for it.
 *
 * A delivery held by a limit stays in the dispatcher's buffer (heartbeated, so AckWait does not redeliver it) and
 * takes no concurrency slot: the worker starts other types meanwhile. The task stays SCHEDULED until it starts, and no
 * attempt is spent (a NAK would count as one). A type with no limit costs nothing here: without any limit the
 * dispatcher does not even read a delivery's type, and it tracks nothing for a delivery of a type without one.
 */
import type { Logger } from "@tm/kit";
import type { TypeRate } from "@tm/store";
import type { JsMsg } from "nats";

/** What the limits track of a buffered delivery of a limited type. */
interface Held {
  type: string;
  /** Its reserved turn (ms, the `now` clock) once granted; "pending" while Redis is asked. */
  turn?: number | "pending";
  /** A wake-up is set for its turn. */
  armed?: boolean;
}

export interface TypeLimitsOptions {
  concurrency: ReadonlyMap<string, number>;
  rates: ReadonlyMap<string, TypeRate>;
  /** Reserves one start of `type`; resolves to the wait in ms before it (reserveTypeStart). */
  reserve(type: string, rate: TypeRate): Promise<number>;
  /** Called when a held delivery may be startable now: its turn came, or its reservation can be asked again. */
  wake(): void;
  log: Logger;
  now?: () => number;
  /** How long to wait before asking again when a reservation failed (Redis unreachable). */
  retryMs?: number;
}

const decoder = new TextDecoder();

export class TypeLimits {
  /** Whether any limit is configured: without one the dispatcher skips every check. */
  readonly active: boolean;
  readonly #options: TypeLimitsOptions;
  readonly #now: () => number;
  readonly #running = new Map<string, number>();
  /** Reservations asked or granted whose delivery has not started yet (they count against the concurrency limit). */
  readonly #reserved = new Map<string, number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** The buffered or running deliveries of limited types. */
  readonly #held = new Map<JsMsg, Held>();
  #stopped = false;
  #lastFailureLog = 0;

  constructor(options: TypeLimitsOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.active = options.concurrency.size > 0 || options.rates.size > 0;
  }

  /** The types with a limit (for metrics). */
  get limitedTypes(): string[] {
    return [...new Set([...this.#options.concurrency.keys(), ...this.#options.rates.keys()])].sort();
  }

  /** Notes a delivery entering the buffer: its type is read (only when some limit is configured) and, when that type
   *  is limited, tracked until it finishes or is handed back. */
  buffered(msg: JsMsg): void {
    if (!this.active) return;
    let type: unknown;
    try {
      type = (JSON.parse(decoder.decode(msg.data)) as { type?: unknown } | null)?.type;
    } catch {
      return; // not JSON: its DeliveryProcessor dead-letters it
    }
    if (typeof type === "string" && this.#limited(type)) this.#held.set(msg, { type });
  }

  /** The limited type of a buffered or running delivery (undefined: not limited). */
  typeOf(msg: JsMsg): string | undefined {
    return this.#held.get(msg)?.type;
  }

  running(type: string): number {
    return this.#running.get(type) ?? 0;
  }

  /**
   * Whether the delivery `msg` may start now. One of a rate-limited type first reserves its turn (asynchronously;
   * `wake` is called when it comes) and is answered false until then. Called by the dispatcher only when it has a free
   * slot.
   */
  admit(msg: JsMsg): boolean {
    const entry = this.#held.get(msg);
    if (entry === undefined) return true;
    const type = entry.type;
    if (entry.turn === undefined) {
      const max = this.#options.concurrency.get(type);
      if (max !== undefined && this.running(type) + (this.#reserved.get(type) ?? 0) >= max) return false;
      const rate = this.#options.rates.get(type);
      if (rate === undefined) return true;
      this.#reserve(entry, type, rate);
      return false;
    }
    if (entry.turn === "pending") return false;
    const early = entry.turn - this.#now();
    if (early <= 0) return true;
    // A timer can fire a millisecond before Date.now() reaches its time (Node times it from the loop's cached
    // clock), so every early look arms a wake-up again rather than trusting one set when the turn was granted.
    if (!entry.armed) {
      entry.armed = true;
      this.#wakeIn(early + 1, () => {
        entry.armed = false;
      });
    }
    return false;
  }

  /** Whether the delivery `msg` is waiting on its type's limit (without reserving anything): the dispatcher buffers
   *  more deliveries while some it holds are waiting, so that other types behind them are not stuck. */
  waiting(msg: JsMsg): boolean {
    const entry = this.#held.get(msg);
    if (entry === undefined) return false;
    const type = entry.type;
    if (entry.turn === "pending") return true;
    if (entry.turn !== undefined) return entry.turn > this.#now();
    const max = this.#options.concurrency.get(type);
    return max !== undefined && this.running(type) + (this.#reserved.get(type) ?? 0) >= max;
  }

  started(msg: JsMsg): void {
    const entry = this.#held.get(msg);
    if (entry === undefined) return;
    if (entry.turn !== undefined) this.#add(this.#reserved, entry.type, -1);
    entry.turn = undefined; // its reservation is spent: a late answer to it changes nothing
    this.#add(this.#running, entry.type, 1);
  }

  finished(msg: JsMsg): void {
    const entry = this.#held.get(msg);
    if (entry === undefined) return;
    this.#held.delete(msg);
    this.#add(this.#running, entry.type, -1);
  }

  /** A buffered delivery handed back without starting (shutdown): its reservation no longer counts. */
  dropped(msg: JsMsg): void {
    const entry = this.#held.get(msg);
    if (entry === undefined) return;
    this.#held.delete(msg);
    if (entry.turn !== undefined) this.#add(this.#reserved, entry.type, -1);
    entry.turn = undefined; // a late answer to its reservation changes nothing
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  #limited(type: string): boolean {
    return this.#options.concurrency.has(type) || this.#options.rates.has(type);
  }

  #reserve(entry: Held, type: string, rate: TypeRate): void {
    entry.turn = "pending";
    this.#add(this.#reserved, type, 1);
    this.#options.reserve(type, rate).then(
      (waitMs) => {
        if (this.#stopped || entry.turn !== "pending") return;
        entry.turn = this.#now() + waitMs;
        this.#options.wake(); // the dispatcher looks again: the delivery starts now or arms a wake-up for its turn
      },
      (error: unknown) => {
        if (this.#stopped || entry.turn !== "pending") return;
        entry.turn = undefined;
        this.#add(this.#reserved, type, -1);
        // Held, not started: a start rate that cannot be checked is not a rate that holds. Logged once a minute.
        const now = Date.now();
        if (now - this.#lastFailureLog >= 60_000) {
          this.#lastFailureLog = now;
          this.#options.log.warn(
            { err: error, type },
            "could not reserve a start of a rate-limited type; held, retrying",
          );
        }
        this.#wakeIn(this.#options.retryMs ?? 1_000);
      },
    );
  }

  #wakeIn(ms: number, fired?: () => void): void {
    if (ms <= 0) {
      this.#options.wake();
      return;
    }
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fired?.();
      if (!this.#stopped) this.#options.wake();
    }, ms);
    this.#timers.add(timer);
  }

  #add(counts: Map<string, number>, type: string, delta: number): void {
    const next = (counts.get(type) ?? 0) + delta;
    if (next <= 0) counts.delete(type);
    else counts.set(type, next);
  }
}
