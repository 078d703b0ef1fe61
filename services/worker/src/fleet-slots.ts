/**
 * Fleet-wide concurrency per task type (WORKER_TYPE_GLOBAL_CONCURRENCY), the worker's side of the semaphore in Redis
 * (`@tm/store` type-slots: a sorted set of leases per type). A delivery of such a type takes a slot before it starts
 * and gives it back when it ends; the slots this worker holds are renewed every third of a lease while their tasks
 * run, so a worker that dies loses its slots to the others within one lease.
 *
 * Asking is paced per type once the type is contended: while takes succeed, every delivery that may start asks at
 * once (their scripts share pipelined writes); after a refusal (all slots taken) no new take for that type before
 * `retryMs`, and then one at a time until one succeeds. A slot freed elsewhere is noticed at the next ask, so a
 * contended type polls Redis every `retryMs` from each worker holding one of its deliveries: one small script, and
 * none for a type with no waiting delivery.
 */
import { type Logger, LogThrottle } from "@tm/kit";

/** A delivery's claim on a slot. */
export interface SlotClaim {
  type: string;
  /** Unique per delivery and worker process. */
  holder: string;
  slot?: "pending" | "held";
}

export interface SlotStore {
  take(type: string, holder: string, limit: number): Promise<boolean>;
  renew(type: string, holders: string[]): Promise<number>;
  release(type: string, holder: string): Promise<void>;
}

export interface FleetSlotsOptions {
  limits: ReadonlyMap<string, number>;
  store: SlotStore;
  /** Called when a claim may proceed (a slot taken) or may ask again. */
  wake(): void;
  log: Logger;
  now?: () => number;
  /** After a refusal, how long before this worker asks for that type again (default 250 ms). */
  retryMs?: number;
  /** After a failed ask (Redis unreachable), how long before asking again (default 1 s). */
  errorRetryMs?: number;
  /** How often the slots held are renewed (a third of their lease). */
  renewEveryMs: number;
}

export class FleetSlots {
  readonly #options: FleetSlotsOptions;
  /** Per type, the fleet-wide limit: the options' until an operator's run-time limits replace them (setLimits). */
  #limits: ReadonlyMap<string, number>;
  readonly #now: () => number;
  /** Takes in flight per type. */
  readonly #asking = new Map<string, number>();
  /** Types whose last take was refused (or failed), until one succeeds: asked one take at a time. */
  readonly #contended = new Set<string>();
  /** Per type, no take before this time (after a refusal or failure). */
  readonly #notBefore = new Map<string, number>();
  /** Types with a wake-up set for their `notBefore`. */
  readonly #armed = new Set<string>();
  readonly #held = new Set<SlotClaim>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #renewal: NodeJS.Timeout | undefined;
  readonly #failureWarnings = new LogThrottle(60_000);

  constructor(options: FleetSlotsOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#limits = options.limits;
  }

  limited(type: string): boolean {
    return this.#limits.has(type);
  }

  get types(): Iterable<string> {
    return this.#limits.keys();
  }

  /** The type's fleet-wide limit now; undefined: none. */
  limitOf(type: string): number | undefined {
    return this.#limits.get(type);
  }

  /** Whether any type has a fleet-wide limit now. */
  get anyLimit(): boolean {
    return this.#limits.size > 0;
  }

  /**
   * New limits, from the next take on. Slots held stay held until their tasks end: a lowered limit refuses takes
   * until fewer than it are held, and a type whose limit went away takes no slot for its next deliveries.
   */
  setLimits(limits: ReadonlyMap<string, number>): void {
    this.#limits = limits;
  }

  /** Whether `claim` holds a slot; if it has none and may ask, asks (asynchronously: `wake` when answered). */
  acquire(claim: SlotClaim): boolean {
    if (claim.slot === "held") return true;
    if (claim.slot === "pending") return false;
    if (this.#contended.has(claim.type) && this.#asking.has(claim.type)) return false;
    const early = (this.#notBefore.get(claim.type) ?? 0) - this.#now();
    if (early > 0) {
      // A timer can fire a millisecond before Date.now() reaches its time: every early look makes sure one is set.
      this.#wakeIn(claim.type, early + 1);
      return false;
    }
    const limit = this.#limits.get(claim.type);
    if (limit === undefined) return true;
    claim.slot = "pending";
    this.#count(claim.type, 1);
    this.#options.store.take(claim.type, claim.holder, limit).then(
      (got) => {
        this.#count(claim.type, -1);
        if (got) this.#contended.delete(claim.type);
        else this.#contended.add(claim.type);
        if (claim.slot !== "pending") {
          // Given up meanwhile (handed back at shutdown): a slot it got after all goes straight back.
          if (got) this.#giveBack(claim);
          return;
        }
        if (got) {
          claim.slot = "held";
          this.#held.add(claim);
          this.#options.wake();
          return;
        }
        claim.slot = undefined;
        this.#pause(claim.type, this.#options.retryMs ?? 250);
      },
      (error: unknown) => {
        this.#count(claim.type, -1);
        this.#contended.add(claim.type);
        if (claim.slot === "pending") claim.slot = undefined;
        const heldBack = this.#failureWarnings.pass();
        if (heldBack !== undefined) {
          this.#options.log.warn(
            { err: error, type: claim.type, heldBack },
            "could not take a fleet-wide slot; held, retrying",
          );
        }
        this.#pause(claim.type, this.#options.errorRetryMs ?? 1_000);
      },
    );
    return false;
  }

  /** The claim's task ended, or it is handed back unstarted: its slot, if any, goes back. */
  release(claim: SlotClaim): void {
    if (claim.slot === "held") this.#giveBack(claim);
    claim.slot = undefined; // a take still in flight gives its slot back when it answers
  }

  /** Starts renewing the leases of the slots held. */
  start(): void {
    this.#renewal = setInterval(() => void this.#renew(), this.#options.renewEveryMs);
    this.#renewal.unref();
  }

  /** Stops renewing and waking; slots still held are given back as their tasks end (release). */
  stop(): void {
    clearInterval(this.#renewal);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#armed.clear();
  }

  #count(type: string, delta: number): void {
    const next = (this.#asking.get(type) ?? 0) + delta;
    if (next <= 0) this.#asking.delete(type);
    else this.#asking.set(type, next);
  }

  #pause(type: string, ms: number): void {
    this.#notBefore.set(type, this.#now() + ms);
    this.#wakeIn(type, ms);
  }

  /** Wakes the dispatcher in `ms`, unless a wake-up for `type` is already set. */
  #wakeIn(type: string, ms: number): void {
    if (this.#armed.has(type)) return;
    this.#armed.add(type);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#armed.delete(type);
      this.#options.wake();
    }, ms);
    this.#timers.add(timer);
  }

  #giveBack(claim: SlotClaim): void {
    this.#held.delete(claim);
    this.#options.store.release(claim.type, claim.holder).catch((error: unknown) => {
      // Its lease runs out by itself: the slot is back within one lease.
      this.#options.log.debug({ err: error, type: claim.type }, "could not give a fleet-wide slot back");
    });
  }

  async #renew(): Promise<void> {
    const byType = new Map<string, string[]>();
    for (const claim of this.#held) {
      const holders = byType.get(claim.type);
      if (holders) holders.push(claim.holder);
      else byType.set(claim.type, [claim.holder]);
    }
    for (const [type, holders] of byType) {
      try {
        const renewed = await this.#options.store.renew(type, holders);
        if (renewed < holders.length) {
          this.#options.log.warn(
            { type, held: holders.length, renewed },
            "fleet-wide slots lost their leases (Redis unreachable for a lease?): the limit may be exceeded meanwhile",
          );
        }
      } catch (error) {
        this.#options.log.debug({ err: error, type }, "could not renew fleet-wide slots; retrying at the next round");
      }
    }
  }
}
