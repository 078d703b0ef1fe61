/**
 * Per-type limits on starting tasks, consulted by the dispatcher before it starts a buffered delivery:
 *
 * - concurrency (WORKER_TYPE_CONCURRENCY): at most N tasks of the type run at once in this worker (Celery's
 *   per-worker limits, Temporal's per-worker activity slots): for a handler that needs a scarce local resource.
 * - rate (WORKER_TYPE_RATES): at most N starts per second / minute / hour across every worker (BullMQ's and Temporal's
 *   global rate limits): for a handler that calls an API with a quota. Each start reserves its turn in Redis
 *   (`reserveTypeStart`, GCRA) and the delivery waits for it.
 * - fleet-wide concurrency (WORKER_TYPE_GLOBAL_CONCURRENCY): at most N running at once across every worker (BullMQ's
 *   global concurrency): for a downstream that takes only so many connections. Each start takes a slot in Redis
 *   (FleetSlots) and gives it back when the task ends.
 *
 * - a pause (`pause`): a handler of the type was rate limited by its downstream (RateLimitedError), here or on
 *   another worker (type-backoffs.ts), so this worker starts none of the type until the wait it was told has passed
 *   (BullMQ's `worker.rateLimit`).
 *
 * In that order, after any pause: a delivery first needs room under this worker's limit, then a fleet-wide slot, then
 * its turn.
 *
 * A delivery held by a limit stays in the dispatcher's buffer (heartbeated, so AckWait does not redeliver it) and
 * takes no concurrency slot: the worker starts other types meanwhile. The task stays SCHEDULED until it starts, and no
 * attempt is spent (a NAK would count as one). A type with no limit costs nothing here: without any limit the
 * dispatcher does not even read a delivery's type, and it tracks nothing for a delivery of a type without one.
 */
import { randomUUID } from "node:crypto";
import { type Logger, LogThrottle } from "@tm/kit";
import type { TypeRate } from "@tm/store";
import type { JsMsg } from "nats";
import type { FleetSlots, SlotClaim } from "./fleet-slots.js";

/** What the limits track of a buffered delivery of a limited type. */
interface Held extends SlotClaim {
  /** It has begun to claim a start (a fleet-wide slot, a turn): it counts against this worker's limit until it
   *  starts or is handed back. */
  claimed?: boolean;
  /** Its reserved turn (ms, the `now` clock) once granted; "pending" while Redis is asked. */
  turn?: number | "pending";
  /** A wake-up is set for its turn. */
  armed?: boolean;
}

export interface TypeLimitsOptions {
  concurrency: ReadonlyMap<string, number>;
  rates: ReadonlyMap<string, TypeRate>;
  /** Fleet-wide concurrency limits (its own map of them, which `update` changes). */
  slots?: FleetSlots;
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
  readonly #options: TypeLimitsOptions;
  /** Fleet-wide start rates per type: the options' until `update` replaces them. */
  #rates: ReadonlyMap<string, TypeRate>;
  #active: boolean;
  readonly #now: () => number;
  readonly #running = new Map<string, number>();
  /** Deliveries claiming a start (a slot, a turn) that have not started yet: they count against this worker's limit. */
  readonly #reserved = new Map<string, number>();
  readonly #slots: FleetSlots | undefined;
  /** Holder ids of fleet-wide slots: unique per process and delivery. */
  readonly #instance = randomUUID();
  #sequence = 0;
  readonly #timers = new Set<NodeJS.Timeout>();
  /** The buffered or running deliveries of limited types. */
  readonly #held = new Map<JsMsg, Held>();
  #stopped = false;
  readonly #failureWarnings = new LogThrottle(60_000);
  /** Types paused after a rate-limited run: until when (the `now` clock). */
  readonly #pausedUntil = new Map<string, number>();
  /** Types an operator paused (taskctl limits set --paused): until they resume it. */
  #operatorPaused: ReadonlySet<string> = new Set();
  readonly #pauseWakes = new Set<string>();
  #version = 0;

  constructor(options: TypeLimitsOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#slots = options.slots;
    this.#rates = options.rates;
    this.#active = this.#anyLimit();
  }

  /** Whether any limit is in force: without one the dispatcher skips every check. */
  get active(): boolean {
    return this.#active;
  }

  /**
   * The fleet-wide limits now in force (an operator changed them at run time: runtime-limits.ts); this worker's own
   * WORKER_TYPE_CONCURRENCY does not change. They apply to every start from now on, buffered deliveries included:
   * `version` changes, and the dispatcher tracks its buffer again before it starts another.
   */
  update(limits: {
    rates: ReadonlyMap<string, TypeRate>;
    globalConcurrency: ReadonlyMap<string, number>;
    paused?: ReadonlySet<string>;
  }): void {
    this.#rates = limits.rates;
    this.#slots?.setLimits(limits.globalConcurrency);
    this.#operatorPaused = limits.paused ?? new Set();
    this.#changed();
    // A lifted limit (a type resumed, a rate removed) may let held deliveries start now.
    if (!this.#stopped) this.#options.wake();
  }

  /**
   * Starts no delivery of `type` before `untilMs` (a handler of it was told to wait: RateLimitedError). Deliveries
   * already buffered are held too once the dispatcher has tracked them again (`version` changed).
   */
  pause(type: string, untilMs: number): void {
    const current = this.#pausedUntil.get(type);
    if (this.#stopped || (current !== undefined && untilMs <= current)) return; // only ever lengthened
    this.#pausedUntil.set(type, untilMs);
    this.#changed();
    this.#armPauseEnd(type, untilMs);
  }

  /** One wake-up per paused type, at the end of its pause; one that fires early (a timer can, by a millisecond, or
   *  the pause was extended) finds the type still paused and arms the next from `admit`. */
  #armPauseEnd(type: string, until: number): void {
    if (this.#pauseWakes.has(type)) return;
    this.#pauseWakes.add(type);
    this.#wakeIn(Math.max(1, until - this.#now() + 1), () => this.#pauseWakes.delete(type));
  }

  /** Whether `type` is paused now (see `pause`); a pause that has ended is forgotten. */
  paused(type: string): boolean {
    const until = this.#pausedUntil.get(type);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#pausedUntil.delete(type);
    this.#changed();
    return false;
  }

  /** Bumped whenever the limits change: a delivery buffered before may need tracking now (`buffered` again). */
  get version(): number {
    return this.#version;
  }

  #changed(): void {
    this.#active = this.#anyLimit();
    this.#version++;
  }

  /** The limits in force for a type (for metrics); absent: none of that kind. */
  limitsOf(type: string): {
    concurrency?: number;
    globalConcurrency?: number;
    ratePerSecond?: number;
    paused?: boolean;
  } {
    const concurrency = this.#options.concurrency.get(type);
    const globalConcurrency = this.#slots?.limitOf(type);
    const ratePerSecond = this.#rates.get(type)?.perSecond;
    return {
      ...(concurrency === undefined ? {} : { concurrency }),
      ...(globalConcurrency === undefined ? {} : { globalConcurrency }),
      ...(ratePerSecond === undefined ? {} : { ratePerSecond }),
      ...(this.#operatorPaused.has(type) ? { paused: true } : {}),
    };
  }

  /** The types with a limit (for metrics). */
  get limitedTypes(): string[] {
    const slots = [...(this.#slots?.types ?? [])];
    const paused = [...this.#pausedUntil.keys(), ...this.#operatorPaused];
    return [...new Set([...this.#options.concurrency.keys(), ...this.#rates.keys(), ...slots, ...paused])].sort();
  }

  #anyLimit(): boolean {
    return (
      this.#options.concurrency.size > 0 ||
      this.#rates.size > 0 ||
      this.#slots?.anyLimit === true ||
      this.#pausedUntil.size > 0 ||
      this.#operatorPaused.size > 0
    );
  }

  /** Notes a delivery entering the buffer: its type is read (only when some limit is configured) and, when that type
   *  is limited, tracked until it finishes or is handed back. Called again for a delivery already tracked, it changes
   *  nothing. */
  buffered(msg: JsMsg): void {
    if (!this.active || this.#held.has(msg)) return;
    let type: unknown;
    try {
      type = (JSON.parse(decoder.decode(msg.data)) as { type?: unknown } | null)?.type;
    } catch {
      return; // not JSON: its DeliveryProcessor dead-letters it
    }
    if (typeof type === "string" && this.#limited(type)) {
      this.#held.set(msg, { type, holder: `${this.#instance}:${++this.#sequence}` });
    }
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
    if (this.#operatorPaused.has(type)) return false; // woken by the update that resumes it
    if (this.paused(type)) {
      this.#armPauseEnd(type, this.#pausedUntil.get(type) as number);
      return false;
    }
    const rate = this.#rates.get(type);
    const needsSlot = this.#slots?.limited(type) === true;
    if (!entry.claimed) {
      if (this.#localLimitReached(type)) return false;
      if (!needsSlot && rate === undefined) return true;
      entry.claimed = true;
      this.#add(this.#reserved, type, 1);
    }
    if (needsSlot && !this.#slots?.acquire(entry)) return false;
    if (rate === undefined) return true;
    if (entry.turn === undefined) {
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
    if (this.#operatorPaused.has(entry.type) || this.paused(entry.type)) return true;
    if (!entry.claimed) return this.#localLimitReached(entry.type);
    if (this.#slots?.limited(entry.type) && entry.slot !== "held") return true;
    if (!this.#rates.has(entry.type)) return false;
    return entry.turn === undefined || entry.turn === "pending" || entry.turn > this.#now();
  }

  started(msg: JsMsg): void {
    const entry = this.#held.get(msg);
    if (entry === undefined) return;
    if (entry.claimed) this.#add(this.#reserved, entry.type, -1);
    entry.claimed = false;
    entry.turn = undefined; // its turn is spent: a late answer to it changes nothing
    this.#add(this.#running, entry.type, 1);
  }

  finished(msg: JsMsg): void {
    const entry = this.#held.get(msg);
    if (entry === undefined) return;
    this.#held.delete(msg);
    this.#add(this.#running, entry.type, -1);
    this.#slots?.release(entry);
  }

  /** A buffered delivery handed back without starting (shutdown): its claims no longer count. */
  dropped(msg: JsMsg): void {
    const entry = this.#held.get(msg);
    if (entry === undefined) return;
    this.#held.delete(msg);
    if (entry.claimed) this.#add(this.#reserved, entry.type, -1);
    entry.claimed = false;
    entry.turn = undefined; // a late answer to its reservation changes nothing
    this.#slots?.release(entry);
  }

  stop(): void {
    this.#stopped = true;
    this.#slots?.stop();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  #limited(type: string): boolean {
    return (
      this.#options.concurrency.has(type) ||
      this.#rates.has(type) ||
      this.#slots?.limited(type) === true ||
      this.#operatorPaused.has(type) ||
      this.paused(type)
    );
  }

  /** Whether this worker's own limit for `type` is reached by the tasks running and the deliveries claiming a start. */
  #localLimitReached(type: string): boolean {
    const max = this.#options.concurrency.get(type);
    return max !== undefined && this.running(type) + (this.#reserved.get(type) ?? 0) >= max;
  }

  #reserve(entry: Held, type: string, rate: TypeRate): void {
    entry.turn = "pending";
    this.#options.reserve(type, rate).then(
      (waitMs) => {
        if (this.#stopped || entry.turn !== "pending") return;
        entry.turn = this.#now() + waitMs;
        this.#options.wake(); // the dispatcher looks again: the delivery starts now or arms a wake-up for its turn
      },
      (error: unknown) => {
        if (this.#stopped || entry.turn !== "pending") return;
        entry.turn = undefined; // still claimed: asked again after retryMs
        // Held, not started: a start rate that cannot be checked is not a rate that holds. Logged once a minute.
        const heldBack = this.#failureWarnings.pass();
        if (heldBack !== undefined) {
          this.#options.log.warn(
            { err: error, type, heldBack },
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
