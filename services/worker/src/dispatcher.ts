/**
 * Weighted priority consumption. rt.consume() serves one subject at a time, so it cannot share slots between
 * queues by weight; instead the three durable consumers (one per priority) each buffer their deliveries into a
 * local queue, and one dispatcher starts a delivery whenever one of the `concurrency` slots is free, choosing among
 * the non-empty queues with the WeightedPicker. Each delivery is handled by the @tm/flow DeliveryProcessor of its
 * subject, so acks, retries, dead letters and heartbeats follow the same policy as every other service.
 *
 * Each lane pulls (fetch) only while its local queue holds fewer than `concurrency` deliveries, so one process
 * buffers at most `concurrency` per priority and a second replica gets its share of a backlog at once (with
 * nats.js consume() the client refills on receipt, not on processing, and one replica could hoard up to
 * MaxAckPending per priority). Queued deliveries get the same working() heartbeat as running ones, so one that
 * waits longer than AckWait is not redelivered behind our back.
 *
 * A paused priority (setPaused, from the operators' queue_paused) issues no new pull and starts no delivery: what
 * its pull in progress still brings (at most `concurrency`) and what it had buffered wait, heartbeated, until it is
 * resumed. (Ending that pull early, or handing deliveries back, would spend one of each message's deliveries: a
 * message the server sends to a pull the client abandoned is redelivered only after AckWait.) Running tasks finish.
 *
 * Per-type limits (TypeLimits: WORKER_TYPE_CONCURRENCY, WORKER_TYPE_GLOBAL_CONCURRENCY, WORKER_TYPE_RATES) hold a delivery in its queue until its
 * type may start; the dispatcher starts the first delivery of a queue that may, so other types go past a held one.
 * While deliveries are held a lane pulls for the slots the others could use, up to LIMITED_BUFFER_FACTOR ×
 * `concurrency` buffered in all: beyond that, a backlog of a held type blocks its priority (route such a type to a
 * priority of its own, or raise its limit).
 *
 * A delivery whose handler was rate limited (RateLimitedError) is taken back from its DeliveryProcessor, unacked, and
 * put at the head of its queue, heartbeated like the rest, with its type paused on this worker for the wait it was
 * told (TypeLimits.pause; `onRateLimited` shares the wait with the fleet); then it runs again in the same attempt. Its
 * slot is free meanwhile. A delivery waits so at most `rateLimitHoldMs` in all; past that its next RateLimitedError is
 * an ordinary retry (an attempt spent).
 *
 * A task cancelled while its delivery waits in a queue (releaseCancelled, on the cancel notice) is let through at once
 * to be skipped, rather than waiting for its limit, its pause or its rate-limit wait to end.
 *
 * A quiet worker (setQuiet, an operator's QuietWorker for this process alone) issues no pull and hands back what it
 * holds buffered and what a pull in progress still brings: unlike a paused priority, which every worker holds, the
 * point is that the other workers take those now. Running tasks finish, deferred ones (a rate-limit wait) included.
 */
import {
  backoffDelayMs,
  type ConsumerHooks,
  DeliveryProcessor,
  DurableWatch,
  durableName,
  type FlowSettings,
  isMissingStreamOrConsumer,
  type MessageHandler,
  type Outcome,
  type Priority,
  provisionConsumer,
  type RetryBackoff,
  streamOf,
  workerSubject,
} from "@tm/flow";
import { isOutage, LogThrottle, type Runtime, recreateConsumer, retryWhileJetStreamStarts } from "@tm/kit";
import type { Consumer, ConsumerMessages, JsMsg } from "nats";
import type { WorkerSubject } from "./run-task.js";
import { TypeLimits } from "./type-limits.js";
import { type PriorityWeights, WeightedPicker } from "./weighted-picker.js";

export interface DispatcherOptions {
  rt: Runtime;
  concurrency: number;
  weights: PriorityWeights;
  handler: MessageHandler<WorkerSubject>;
  hooks: ConsumerHooks<WorkerSubject>;
  /** Per-type start limits; none by default. */
  limits?: TypeLimits;
  /** The longest a delivery may wait in all on RateLimitedErrors without spending an attempt (0: never deferred). */
  rateLimitHoldMs?: number;
  /** Told when a type's handler was rate limited and its starts are paused here for `waitMs` (the fleet hears of it:
   *  type_backoff). */
  onRateLimited?: (type: string, waitMs: number) => void;
  /** Records deliveries handed back unstarted (NAKed from the buffers): they are not attempts (@tm/store hand-backs). */
  recordHandBacks?: (deliveries: TaskRef[]) => Promise<void>;
  /** A redelivered task's attempt (deliveries handed back unstarted are not attempts; @tm/flow attemptOf). */
  attemptOf?: (task: TaskRef, deliveryCount: number) => Promise<number>;
  /** Deliveries the worker consumers allow beyond the attempts, for hand-backs (WORKER_HANDBACK_DELIVERIES; 0 unset):
   *  without them the server's MaxDeliver counts every hand-back, and a task handed back by as many stopping
   *  workers as it has attempts would be given up on without having run. */
  handBackDeliveries?: number;
  /** A task type's own retry policy (its handler's maxAttempts and retryBackoff), used where the task has none. */
  typeRetryPolicy?: (type: string) => TypeRetryPolicy | undefined;
  /** The worker pool whose queues it takes (WORKER_POOL: tasks.worker.<priority>.<pool>); undefined: the default
   *  pool's tasks.worker.<priority>. */
  pool?: string;
}

/** What a handler may declare for its type's retries (a task's own max_attempts and retry_backoff come first). */
export interface TypeRetryPolicy {
  maxAttempts?: number;
  retryBackoff?: RetryBackoff;
}

/** A task message's identity: its task and generation. */
export interface TaskRef {
  taskId: string;
  generation: number;
}

/** WORKER_RATE_LIMIT_HOLD_MS's default. */
export const DEFAULT_RATE_LIMIT_HOLD_MS = 600_000;

/** A delivery taken back after a RateLimitedError, until it is queued again. */
interface Deferral {
  type: string;
  untilMs: number;
}

const decoder = new TextDecoder();

/** The task of a buffered delivery (undefined: not a task message; its DeliveryProcessor dead-letters it). */
function taskRefOf(msg: JsMsg): TaskRef | undefined {
  try {
    const { taskId, generation } = (JSON.parse(decoder.decode(msg.data)) ?? {}) as {
      taskId?: unknown;
      generation?: unknown;
    };
    if (typeof taskId !== "string") return undefined;
    return { taskId, generation: typeof generation === "number" ? generation : 0 };
  } catch {
    return undefined;
  }
}

/** The longest a hand-back waits for its record (Redis down must not hold a shutdown); a third of AckWait at most. */
const HAND_BACK_RECORD_BUDGET_MS = 1_000;

/** With per-type limits, how many deliveries a lane may buffer at most, in units of `concurrency`. */
export const LIMITED_BUFFER_FACTOR = 4;

interface Lane {
  priority: Priority;
  /** The queue it takes: its priority's, of this worker's pool. */
  subject: WorkerSubject;
  processor: DeliveryProcessor<WorkerSubject>;
  queue: JsMsg[];
  /** The pull in progress. */
  batch?: ConsumerMessages;
  /** When the pull in progress expires on the server (0: none open). */
  pullEndsAt: number;
  loop?: Promise<void>;
}

/** How long an idle pull waits before the next is issued (nats.js minimum 1 s). */
const PULL_EXPIRES_MS = 5_000;

export class PriorityDispatcher {
  readonly #rt: Runtime;
  /** The runtime's flow settings with the hand-back allowance: the worker consumers' own. */
  readonly #settings: FlowSettings;
  readonly #recreateWarnings = new LogThrottle(10_000);
  readonly #concurrency: number;
  readonly #picker: WeightedPicker;
  readonly #lanes: Record<Priority, Lane>;
  readonly #inFlight = new Set<Promise<unknown>>();
  #heartbeat: NodeJS.Timeout | undefined;
  /** Signals that a queue shrank (a delivery started), that a paused priority resumed, or that the dispatcher stops. */
  readonly #queueShrank = new EventTarget();
  #stopping = false;
  #stopped: Promise<void> | undefined;
  readonly #paused = new Set<Priority>();
  #quiet = false;
  readonly #limits: TypeLimits;
  /** The limits' version the queued deliveries were last tracked against. */
  #trackedVersion: number;
  readonly #deferrals = new Map<JsMsg, Deferral>();
  /** Deliveries whose attempt started and waits out a RateLimitedError: a quiet worker keeps and resumes them (they
   *  are running tasks), and one handed back (the worker stops) spends that attempt, so it is not recorded as a
   *  hand-back. */
  readonly #resumable = new WeakSet<JsMsg>();
  readonly #pauseLog = new LogThrottle(60_000);
  readonly #onRateLimited: ((type: string, waitMs: number) => void) | undefined;
  readonly #recordHandBacks: ((deliveries: TaskRef[]) => Promise<void>) | undefined;

  constructor({
    rt,
    concurrency,
    weights,
    handler,
    hooks,
    limits,
    rateLimitHoldMs = DEFAULT_RATE_LIMIT_HOLD_MS,
    onRateLimited,
    recordHandBacks,
    attemptOf,
    handBackDeliveries = 0,
    typeRetryPolicy = () => undefined,
    pool,
  }: DispatcherOptions) {
    this.#rt = rt;
    this.#settings = { ...rt.settings, handBackDeliveries };
    this.#onRateLimited = onRateLimited;
    this.#recordHandBacks = recordHandBacks;
    this.#concurrency = concurrency;
    this.#limits =
      limits ??
      new TypeLimits({
        concurrency: new Map(),
        rates: new Map(),
        reserve: () => Promise.resolve(0),
        wake: () => this.wake(),
        log: rt.log,
      });
    this.#trackedVersion = this.#limits.version;
    this.#picker = new WeightedPicker(weights);
    const lane = (priority: Priority): Lane => {
      const subject = workerSubject(priority, pool) as WorkerSubject;
      return {
        priority,
        subject,
        queue: [],
        pullEndsAt: 0,
        processor: new DeliveryProcessor({
          js: rt.nats.js,
          publisher: rt.publisher,
          service: rt.name,
          subject,
          handler,
          settings: this.#settings,
          isOutage,
          // A task's max_attempts (else its type's): its last attempt's failure dead-letters it, and an interrupted last
          // attempt is not run again. Its retry_backoff likewise, else the pipeline's delays.
          attemptsOf: (task) => task.maxAttempts ?? typeRetryPolicy(task.type)?.maxAttempts,
          retryDelayOf: (task, attempt) => {
            const backoff = task.retryBackoff ?? typeRetryPolicy(task.type)?.retryBackoff;
            return backoff ? backoffDelayMs(backoff, attempt) : undefined;
          },
          ...(attemptOf
            ? { attemptOf: (task, count) => attemptOf({ taskId: task.taskId, generation: task.generation }, count) }
            : {}),
          deferRateLimited: (msg, task, error, ctx) => {
            if (this.#stopping || ctx.deferredMs + error.retryAfterMs > rateLimitHoldMs) return false;
            this.#deferrals.set(msg, { type: task.type, untilMs: Date.now() + error.retryAfterMs });
            return true;
          },
          hooks: rt.stageHooks(subject, hooks),
        }),
      };
    };
    this.#lanes = { high: lane("high"), medium: lane("medium"), low: lane("low") };
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  queued(priority: Priority): number {
    return this.#lanes[priority].queue.length;
  }

  /** Buffered deliveries per limited type (for metrics). */
  bufferedByType(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const lane of Object.values(this.#lanes)) {
      for (const msg of lane.queue) {
        const type = this.#limits.typeOf(msg);
        if (type !== undefined) counts.set(type, (counts.get(type) ?? 0) + 1);
      }
    }
    return counts;
  }

  /** Wakes the dispatcher when a held delivery may start (TypeLimits' `wake`). */
  wake(): void {
    this.#queueShrank.dispatchEvent(new Event("shrank")); // one held delivery fewer may let its lane pull again
    this.#dispatch();
  }

  paused(priority: Priority): boolean {
    return this.#paused.has(priority);
  }

  /** Stops (true) or resumes (false) taking tasks of `priority`. */
  setPaused(priority: Priority, paused: boolean): void {
    if (paused === this.#paused.has(priority)) return;
    if (paused) {
      this.#paused.add(priority);
      return;
    }
    this.#paused.delete(priority);
    this.#queueShrank.dispatchEvent(new Event("shrank")); // wakes its pull loop
    this.#dispatch();
  }

  /** Whether it takes no new tasks (setQuiet). */
  get quiet(): boolean {
    return this.#quiet;
  }

  /** Stops (true) or resumes (false) taking tasks at all; quiet, what it holds buffered is handed back at once.
   *  Resolves how many deliveries were handed back. */
  async setQuiet(quiet: boolean): Promise<number> {
    if (quiet === this.#quiet || this.#stopping) return 0;
    this.#quiet = quiet;
    if (!quiet) {
      this.#queueShrank.dispatchEvent(new Event("shrank")); // wakes the pull loops
      return 0;
    }
    let handedBack = 0;
    for (const lane of Object.values(this.#lanes)) {
      // A deferred delivery is a running task waiting out its rate limit: it stays, and resumes after its wait.
      const unstarted = lane.queue.filter((msg) => !this.#resumable.has(msg));
      lane.queue = lane.queue.filter((msg) => this.#resumable.has(msg));
      for (const msg of unstarted) this.#limits.dropped(msg);
      await this.#handBack(unstarted, this.#pastOpenPull(lane));
      handedBack += unstarted.length;
    }
    return handedBack;
  }

  async start(): Promise<void> {
    const { nats, settings, name } = this.#rt;
    for (const lane of Object.values(this.#lanes)) {
      const { subject } = lane;
      const consumer = await retryWhileJetStreamStarts(
        `starting the ${subject} consumer`,
        async () => {
          await provisionConsumer(nats.jsm, name, subject, this.#settings);
          return nats.js.consumers.get(streamOf(subject), durableName(name, subject));
        },
        { log: this.#rt.log },
      );
      lane.loop = this.#pullLoop(lane, consumer);
    }
    // A pull request held by a server that went away would otherwise idle until its expiry.
    nats.onReconnect(() => {
      for (const lane of Object.values(this.#lanes)) lane.batch?.stop();
    });
    this.#heartbeat = setInterval(
      () => {
        for (const lane of Object.values(this.#lanes)) for (const msg of lane.queue) msg.working();
      },
      Math.max(250, Math.floor(settings.ackWaitMs / 3)),
    );
    this.#heartbeat.unref();
  }

  /** How many more deliveries a lane should pull: up to `concurrency` that are not held by a type limit, within the
   *  buffer's cap. */
  #room(lane: Lane): number {
    const buffered = lane.queue.length;
    let held = 0;
    if (this.#limits.active) for (const msg of lane.queue) if (this.#limits.waiting(msg)) held++;
    // The limits can change at run time (an operator's), so the cap is read each time.
    const bufferCap = this.#limits.active ? this.#concurrency * LIMITED_BUFFER_FACTOR : this.#concurrency;
    return Math.min(this.#concurrency - (buffered - held), bufferCap - buffered);
  }

  /** Creates a lane's stream and durable again (deleted, or lost with NATS's store); a failure is retried later. */
  async #recreate(lane: Lane): Promise<void> {
    const { nats, name, log } = this.#rt;
    const warnings = this.#recreateWarnings;
    await recreateConsumer(nats, name, lane.subject, this.#settings, { log, warnings }).catch(() => {});
  }

  /** Keeps a lane's queue topped up to `concurrency` startable deliveries, pulling no more than that. */
  async #pullLoop(lane: Lane, consumer: Consumer): Promise<void> {
    const watch = new DurableWatch(consumer);
    while (!this.#stopping) {
      while (!this.#stopping && (this.#quiet || this.#room(lane) <= 0 || this.#paused.has(lane.priority))) {
        await new Promise((resolve) => this.#queueShrank.addEventListener("shrank", resolve, { once: true }));
      }
      if (this.#stopping) return;
      try {
        lane.pullEndsAt = Date.now() + PULL_EXPIRES_MS;
        lane.batch = await consumer.fetch({ max_messages: this.#room(lane), expires: PULL_EXPIRES_MS });
        if (this.#stopping) lane.batch.stop();
        let received = 0;
        for await (const msg of lane.batch) {
          received++;
          if (this.#stopping) {
            await this.#handBack([msg]); // at once rather than waiting out AckWait
            continue;
          }
          if (this.#quiet) {
            await this.#handBack([msg], this.#pastOpenPull(lane));
            continue;
          }
          this.#limits.buffered(msg);
          lane.queue.push(msg);
          this.#dispatch();
        }
        // An empty pull may be a durable deleted under it (DurableWatch): then create it again.
        if (received === 0 && !this.#stopping && (await watch.gone())) await this.#recreate(lane);
      } catch (error) {
        if (this.#stopping) return;
        // The lane's durable or its stream is gone (deleted, or NATS lost its store): create them again. Otherwise
        // NATS is unavailable or reconnecting: try again shortly (the connection reconnects by itself).
        if (isMissingStreamOrConsumer(error)) await this.#recreate(lane);
        await new Promise((resolve) => setTimeout(resolve, 250));
      } finally {
        lane.pullEndsAt = 0;
      }
    }
  }

  /**
   * The redelivery delay of a delivery a quiet worker hands back: past the end of its lane's pull still open on the
   * server, which would otherwise take the message straight back (and each return spends one of its deliveries:
   * five in a few milliseconds exhausted it). A few seconds at most, the pull's expiry; none without an open pull.
   */
  #pastOpenPull(lane: Lane): number {
    return lane.pullEndsAt > 0 ? Math.max(0, lane.pullEndsAt - Date.now()) + 250 : 0;
  }

  /** Whether a priority has a delivery to start, without limits: any buffered one, unless it is paused. */
  readonly #hasWork = (priority: Priority): boolean =>
    this.#lanes[priority].queue.length > 0 && !this.#paused.has(priority);

  /** With limits: the priority the picker chooses among those with a delivery that may start, and that delivery's
   *  place in its queue. (The per-message path without limits allocates nothing for this.) */
  #pickStartable(): { priority: Priority; index: number } | undefined {
    const first: Partial<Record<Priority, number>> = {};
    const priority = this.#picker.pick((p) => {
      if (this.#paused.has(p)) return false;
      first[p] = this.#lanes[p].queue.findIndex((msg) => this.#limits.admit(msg));
      return (first[p] as number) >= 0;
    });
    return priority === undefined ? undefined : { priority, index: first[priority] as number };
  }

  /** Starts deliveries while a slot is free and some queue has one that may start. */
  #dispatch(): void {
    if (this.#limits.version !== this.#trackedVersion) this.#track();
    while (!this.#stopping && this.#inFlight.size < this.#concurrency) {
      let priority: Priority | undefined;
      let msg: JsMsg;
      if (this.#limits.active) {
        const picked = this.#pickStartable();
        if (!picked) return;
        priority = picked.priority;
        msg = this.#lanes[priority].queue.splice(picked.index, 1)[0] as JsMsg;
      } else {
        priority = this.#picker.pick(this.#hasWork);
        if (!priority) return;
        msg = this.#lanes[priority].queue.shift() as JsMsg;
      }
      this.#start(this.#lanes[priority], msg);
    }
  }

  /** Runs a delivery through its lane's DeliveryProcessor in a slot; a deferred one goes back to its queue after. */
  #start(lane: Lane, msg: JsMsg): void {
    this.#limits.started(msg);
    this.#queueShrank.dispatchEvent(new Event("shrank"));
    const running: Promise<unknown> = lane.processor
      .process(msg)
      .catch((error: unknown): Outcome => {
        this.#rt.log.error({ err: error, priority: lane.priority }, "delivery failed unexpectedly; handing it back");
        msg.nak();
        return "handed-back";
      })
      .then((outcome) => {
        this.#limits.finished(msg);
        this.#inFlight.delete(running);
        if (outcome === "deferred") {
          // Always recorded: "deferred" is the outcome only when deferRateLimited said yes.
          const deferral = this.#deferrals.get(msg) as Deferral;
          this.#deferrals.delete(msg);
          this.#requeue(lane, msg, deferral);
        } else if (this.#deferrals.size > 0) {
          this.#deferrals.delete(msg); // recorded, then the delivery failed unexpectedly after all: forget it
        }
        this.#dispatch();
      });
    this.#inFlight.add(running);
  }

  /**
   * A task cancelled while its delivery waits in a queue here (held by a type limit, a paused type or priority, or a
   * rate-limit wait) is let through at once, without waiting for a slot, so that it ends now (skipped as cancelled: acked,
   * audited skipped_cancelled) rather than when its turn comes. Only once `isCancelled` confirms the cancel marker: a
   * stray notice cannot start a held task past its limits. Resolves whether a delivery of the task was let through.
   */
  async releaseCancelled(taskId: string, isCancelled: (taskId: string) => Promise<boolean>): Promise<boolean> {
    if (this.#stopping || this.#find(taskId) === undefined || !(await isCancelled(taskId))) return false;
    const found = this.#find(taskId); // looked up again: the queue may have changed during the read
    if (this.#stopping || found === undefined) return false;
    const [msg] = found.lane.queue.splice(found.index, 1) as [JsMsg];
    this.#limits.dropped(msg); // its type's counts and claims no longer include it
    this.#start(found.lane, msg);
    return true;
  }

  /** Where a queued delivery of the task is. (Cancel notices are rare: each looks through the buffers.) */
  #find(taskId: string): { lane: Lane; index: number } | undefined {
    for (const lane of Object.values(this.#lanes)) {
      const index = lane.queue.findIndex((msg) => taskRefOf(msg)?.taskId === taskId);
      if (index >= 0) return { lane, index };
    }
    return undefined;
  }

  /**
   * NAKs deliveries this worker holds but did not start (or whose rate-limit wait it cannot see out), so another
   * worker takes them now, after recording the unstarted ones as hand-backs: JetStream counts each as a delivery,
   * and the next worker would otherwise count it as an attempt (a task with max_attempts 1 failed as "interrupted",
   * unrun). A resumable one (its attempt started) is not recorded: handing it back spends its attempt. The record
   * waits a second at most; one not made counts as an attempt, as before.
   */
  async #handBack(msgs: readonly JsMsg[], delayMs?: number): Promise<void> {
    if (msgs.length === 0) return;
    const refs = msgs
      .filter((msg) => !this.#resumable.has(msg))
      .map(taskRefOf)
      .filter((ref): ref is TaskRef => ref !== undefined);
    if (this.#recordHandBacks && refs.length > 0) {
      const budgetMs = Math.min(HAND_BACK_RECORD_BUDGET_MS, Math.floor(this.#rt.settings.ackWaitMs / 3));
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        this.#recordHandBacks(refs).then(
          () => undefined,
          (error: unknown) => error,
        ),
        new Promise((resolve) => (timer = setTimeout(resolve, budgetMs, "not answered in time"))),
      ]);
      clearTimeout(timer);
      if (outcome !== undefined) {
        this.#rt.log.warn(
          { err: outcome, count: refs.length },
          "could not record deliveries handed back unstarted; the next worker counts each as an attempt",
        );
      }
    }
    for (const msg of msgs) msg.nak(delayMs);
  }

  /** Puts a deferred delivery back at the head of its queue, its type paused until its wait is over. */
  #requeue(lane: Lane, msg: JsMsg, { type, untilMs }: Deferral): void {
    this.#resumable.add(msg);
    if (this.#stopping) {
      // Stopped meanwhile: hand it back, to be delivered again elsewhere once the wait is over (an attempt spent).
      void this.#handBack([msg], Math.max(0, untilMs - Date.now()));
      return;
    }
    if (!this.#limits.paused(type)) {
      const heldBack = this.#pauseLog.pass(type);
      if (heldBack !== undefined) {
        this.#rt.log.info(
          { type, waitMs: untilMs - Date.now(), heldBack },
          "rate limited by its downstream: no task of the type starts here until the wait is over",
        );
      }
    }
    this.#limits.pause(type, untilMs);
    this.#onRateLimited?.(type, untilMs - Date.now());
    this.#limits.buffered(msg);
    lane.queue.unshift(msg);
    // Its queue now holds deliveries that wait (this one, and any of its type): its lane may pull for the free slot.
    this.#queueShrank.dispatchEvent(new Event("shrank"));
  }

  /** Tracks the queued deliveries again after the limits changed: one buffered while its type had no limit (or while
   *  none was active, when types are not even read) is held by the limit it has now. */
  #track(): void {
    this.#trackedVersion = this.#limits.version;
    for (const lane of Object.values(this.#lanes)) for (const msg of lane.queue) this.#limits.buffered(msg);
  }

  /**
   * Stops pulling, hands back what is queued, lets running tasks finish until `deadlineMs`, then aborts them (the
   * DeliveryProcessor NAKs an aborted delivery so it is redelivered at once elsewhere). Idempotent.
   */
  stop(deadlineMs: number): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      clearInterval(this.#heartbeat);
      this.#limits.stop();
      const lanes = Object.values(this.#lanes);
      this.#queueShrank.dispatchEvent(new Event("shrank"));
      for (const lane of lanes) lane.batch?.stop();
      const queued = lanes.flatMap((lane) => lane.queue.splice(0));
      for (const msg of queued) this.#limits.dropped(msg);
      await this.#handBack(queued);
      const finished = Promise.allSettled([...this.#inFlight]);
      const timedOut = await Promise.race([
        finished.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(true), deadlineMs).unref()),
      ]);
      if (timedOut) {
        this.#rt.log.warn({ inFlight: this.#inFlight.size }, "shutdown deadline passed; aborting running tasks");
        for (const lane of lanes) lane.processor.abort("shutdown deadline passed");
        await Promise.race([finished, new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
      }
      await Promise.all(lanes.map((lane) => lane.loop?.catch(() => undefined)));
    })();
    return this.#stopped;
  }
}
