/**
 * StreamTaskStatus's source of updates: ONE Redis subscriber connection per gateway process, fanned out to every
 * open stream of that process. A channel (task_status:<id>) is SUBSCRIBEd when its first stream opens and
 * UNSUBSCRIBEd when its last one closes (reference counting), so a thousand watchers of one task cost one
 * subscription, and a thousand watched tasks cost one connection rather than a thousand.
 *
 * When the subscriber connection drops, every open stream fails at once (the caller turns that into UNAVAILABLE)
 * instead of silently missing updates: clients reconnect and get the current status first again. The connection
 * is made with autoResubscribe off, because after such a failure nobody is listening on the old channels.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { isLaterStatus, isTerminal } from "@tm/flow";
import type { Redis } from "@tm/kit";
import { Keys, parseStatusMessage, type StoredStatus } from "@tm/store";

export interface StatusListener {
  onStatus(status: StoredStatus): void;
  onError(error: Error): void;
}

/** The two pub/sub commands the fan-out needs (a Redis connection in subscriber mode, or a fake in unit tests). */
export interface ChannelTransport {
  subscribe(channel: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
}

interface ChannelEntry {
  listeners: Set<StatusListener>;
  /** Settles when the SUBSCRIBE issued for the first listener is confirmed. */
  subscribed: Promise<unknown>;
}

/** Routes messages of one subscriber connection to the listeners of each channel, counting references. */
export class StatusFanout {
  readonly #channels = new Map<string, ChannelEntry>();

  constructor(private readonly transport: ChannelTransport) {}

  /**
   * Adds a listener for a task's channel and resolves once the channel is subscribed. Later listeners of a channel
   * wait for the same SUBSCRIBE, so none of them reads the current status before updates can reach it.
   */
  async add(taskId: string, listener: StatusListener): Promise<void> {
    const channel = Keys.statusChannel(taskId);
    let entry = this.#channels.get(channel);
    if (!entry) {
      entry = { listeners: new Set(), subscribed: this.transport.subscribe(channel) };
      this.#channels.set(channel, entry);
    }
    entry.listeners.add(listener);
    try {
      await entry.subscribed;
    } catch (error) {
      this.remove(taskId, listener);
      throw error;
    }
  }

  /** Removes a listener; the last one of a channel unsubscribes it. Safe to call twice. */
  remove(taskId: string, listener: StatusListener): void {
    const channel = Keys.statusChannel(taskId);
    const entry = this.#channels.get(channel);
    if (!entry?.listeners.delete(listener)) return;
    if (entry.listeners.size > 0) return;
    this.#channels.delete(channel);
    // A failed UNSUBSCRIBE only means the connection is gone, which fails every listener anyway.
    this.transport.unsubscribe(channel).catch(() => undefined);
  }

  /** Delivers one pub/sub message to the listeners of its channel; foreign or malformed messages are ignored. */
  dispatch(channel: string, message: string): void {
    const entry = this.#channels.get(channel);
    if (!entry) return;
    const status = parseStatusMessage(message);
    if (!status) return;
    for (const listener of [...entry.listeners]) listener.onStatus(status);
  }

  /** Fails every listener and forgets every channel (the connection was lost, or the gateway is stopping). */
  failAll(error: Error): void {
    const entries = [...this.#channels.values()];
    this.#channels.clear();
    for (const entry of entries) for (const listener of entry.listeners) listener.onError(error);
  }

  get channelCount(): number {
    return this.#channels.size;
  }

  get listenerCount(): number {
    let count = 0;
    for (const entry of this.#channels.values()) count += entry.listeners.size;
    return count;
  }
}

/** One stream's buffer of updates: filled by the fan-out, drained by the stream at the client's pace. */
export class StatusQueue implements StatusListener {
  readonly #buffer: StoredStatus[] = [];
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  #rejectFailed: ((error: Error) => void) | undefined;
  /** Rejects when the subscription fails: race other waits against it so that a stream never hangs. */
  readonly failed: Promise<never>;

  constructor() {
    this.failed = new Promise<never>((_, reject) => {
      this.#rejectFailed = reject;
    });
    this.failed.catch(() => undefined); // observed through next() or a race; never an unhandled rejection
  }

  onStatus(status: StoredStatus): void {
    this.#buffer.push(status);
    this.#wake?.();
  }

  onError(error: Error): void {
    this.#error ??= error;
    this.#rejectFailed?.(error);
    this.#wake?.();
  }

  /** The next update (updates received before a failure first); undefined once `signal` aborts. */
  async next(signal: AbortSignal): Promise<StoredStatus | undefined> {
    for (;;) {
      const status = this.#buffer.shift();
      if (status) return status;
      if (this.#error) throw this.#error;
      if (signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#wake = undefined;
          signal.removeEventListener("abort", wake);
          resolve();
        };
        this.#wake = wake;
        signal.addEventListener("abort", wake, { once: true });
      });
    }
  }
}

/**
 * What a stream sends: the current status, then each later update (isLaterStatus: older and duplicate ones are
 * dropped, since Redis may publish an update the stream already read from the hash), ending after a terminal state.
 */
export async function* statusSequence(
  current: StoredStatus,
  nextUpdate: () => Promise<StoredStatus | undefined>,
): AsyncGenerator<StoredStatus> {
  yield current;
  if (isTerminal(current.state)) return;
  let last = current;
  for (;;) {
    const update = await nextUpdate();
    if (!update) return;
    if (!isLaterStatus(last, update)) continue;
    last = update;
    yield update;
    if (isTerminal(update.state)) return;
  }
}

export interface StatusSubscription {
  queue: StatusQueue;
  close(): void;
}

export function unavailable(message: string): ConnectError {
  return new ConnectError(message, Code.Unavailable);
}

/** Owns the subscriber connection and hands out subscriptions backed by the shared fan-out. */
export class StatusSubscriptions {
  readonly #fanout: StatusFanout;

  constructor(private readonly subscriber: Redis) {
    this.#fanout = new StatusFanout({
      subscribe: (channel) => subscriber.subscribe(channel),
      unsubscribe: (channel) => subscriber.unsubscribe(channel),
    });
    subscriber.on("message", (channel: string, message: string) => this.#fanout.dispatch(channel, message));
    subscriber.on("close", () =>
      this.#fanout.failAll(unavailable("status updates unavailable: lost the connection to Redis; retry the call")),
    );
  }

  get ready(): boolean {
    return this.subscriber.status === "ready";
  }

  get openCount(): number {
    return this.#fanout.listenerCount;
  }

  /** Subscribes to a task's updates; resolves once no update can be missed any more. */
  async open(taskId: string): Promise<StatusSubscription> {
    if (!this.ready) throw unavailable("status updates unavailable: not connected to Redis; retry the call");
    const queue = new StatusQueue();
    const close = () => this.#fanout.remove(taskId, queue);
    try {
      await Promise.race([this.#fanout.add(taskId, queue), queue.failed]);
    } catch (error) {
      close();
      if (error instanceof ConnectError) throw error;
      throw unavailable(`status updates unavailable: ${(error as Error).message}`);
    }
    return { queue, close };
  }

  /** Ends every open stream (UNAVAILABLE, so clients retry on another replica) and closes the connection. */
  async close(reason: string): Promise<void> {
    this.#fanout.failAll(unavailable(reason));
    if (this.subscriber.status === "ready") await this.subscriber.quit().catch(() => undefined);
    else this.subscriber.disconnect();
  }
}
