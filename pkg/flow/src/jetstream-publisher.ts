/**
 * JetStream publishes that share one reply subscription, one table of pending acknowledgements and one timer.
 *
 * A JetStream publish is a core NATS publish with a reply subject; the stream answers on it with a PubAck (JSON), an
 * error (JSON with `error`), or, when no stream takes the subject, the server answers with a 503 status. nats.js's
 * `js.publish` does this through its generic request machinery: per publish a request object, a timer, a generator
 * (its ES2017 build's `__awaiter`), several promises and closures, all kept until the PubAck arrives. Services publish
 * three or four messages per delivery with the acks awaited, so that state is alive across the young generation's
 * collections and is promoted: with the services' 2 MB semi-space a publish cost 27–29 µs of CPU there against
 * 11–12 µs here (docs/PERFORMANCE.md). The same as nats.go's `PublishAsync`: the reply subject is
 * `<inbox>.<token>`, and one wildcard subscription routes each answer to its pending entry.
 *
 * Failures keep nats.js's codes, so the publisher's retry policy (isTransientNatsError) reads them as before:
 * no stream for the subject → code "503"; no answer within the timeout → code "TIMEOUT" (a reply lost around a
 * reconnect ends so: retried under the same message id, which the stream deduplicates); a PubAck error → its code
 * ("503", "400", ...) with the server's description; a closed connection → nats.js's own error, at once.
 */
import { createInbox, type Msg, type NatsConnection, type PubAck, type Subscription } from "nats";
import { asMsgHdrs, type EncodedHeaders } from "./headers.js";

/** A publish the stream refused or did not answer; `code` as nats.js's NatsError would carry it. */
export class JetStreamPublishError extends Error {
  override readonly name = "JetStreamPublishError";
  constructor(
    message: string,
    readonly code: string,
    /** The stream's error, when it answered with one (err_code tells e.g. 10077 "maximum messages exceeded"). */
    readonly apiError?: { code: number; err_code?: number; description: string },
  ) {
    super(message);
  }
}

interface Pending {
  resolve(ack: PubAck): void;
  reject(error: Error): void;
  /** Date.now() after which it fails with TIMEOUT. */
  deadline: number;
  subject: string;
}

interface StreamAnswer {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  domain?: string;
  error?: { code: number; err_code?: number; description?: string };
}

const decoder = new TextDecoder();
/** How often pending publishes are checked for their timeout: a timeout fires up to this much late. */
const SWEEP_MS = 50;

export class JetStreamPublisher {
  readonly #nc: NatsConnection;
  readonly #pending = new Map<string, Pending>();
  #prefix = "";
  #subscription: Subscription | undefined;
  #nextToken = 0;
  #sweep: NodeJS.Timeout | undefined;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
  }

  /** Publishes `data` to `subject` and resolves with the stream's PubAck. `headers` is sent as given (the caller
   *  sets Nats-Msg-Id for deduplication). */
  publish(subject: string, data: Uint8Array, headers: EncodedHeaders, timeoutMs: number): Promise<PubAck> {
    return new Promise<PubAck>((resolve, reject) => {
      let token: string | undefined;
      try {
        token = this.#token();
        this.#pending.set(token, { resolve, reject, deadline: Date.now() + timeoutMs, subject });
        this.#nc.publish(subject, data, { reply: `${this.#prefix}.${token}`, headers: asMsgHdrs(headers) });
        this.#sweep ??= setInterval(() => this.#expire(), SWEEP_MS).unref();
      } catch (error) {
        // A closed or draining connection, a payload over the server's limit: nats.js throws at once.
        if (token !== undefined) this.#pending.delete(token);
        reject(error);
      }
    });
  }

  /** Publishes still waiting for their PubAck. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** The next reply token, subscribing first if needed (lazily: the connection must be up to subscribe). */
  #token(): string {
    if (!this.#subscription || this.#subscription.isClosed()) {
      this.#prefix = createInbox(inboxPrefixOf(this.#nc));
      this.#subscription = this.#nc.subscribe(`${this.#prefix}.*`, {
        callback: (error, msg) => (error ? this.#failAll(error) : this.#answer(msg)),
      });
    }
    return (this.#nextToken++).toString(36);
  }

  #answer(msg: Msg): void {
    const token = msg.subject.slice(this.#prefix.length + 1);
    const pending = this.#pending.get(token);
    if (!pending) return; // answered after its timeout: the retry (same message id) has its own token
    this.#pending.delete(token);
    // Nothing may throw out of a subscription callback: nats.js would end the connection's read loop and leave it
    // deaf until its pings fail. An answer that cannot be read fails its publish instead.
    try {
      settle(pending, msg);
    } catch (error) {
      pending.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  #expire(): void {
    const now = Date.now();
    for (const [token, pending] of this.#pending) {
      if (pending.deadline > now) continue;
      this.#pending.delete(token);
      pending.reject(new JetStreamPublishError(`timeout: no PubAck for ${pending.subject}`, "TIMEOUT"));
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  #failAll(error: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    clearInterval(this.#sweep);
    this.#sweep = undefined;
    for (const entry of pending) entry.reject(error);
  }
}

/** Resolves or rejects a publish with the stream's answer. */
function settle(pending: Pending, msg: Msg): void {
  const status = msg.headers?.code ?? 0;
  if (status >= 300 && msg.data.length === 0) {
    pending.reject(
      status === 503
        ? new JetStreamPublishError(`no responders: no stream takes subject ${pending.subject}`, "503")
        : new JetStreamPublishError(msg.headers?.description || `status ${status}`, String(status)),
    );
    return;
  }
  let answer: StreamAnswer | null;
  try {
    answer = JSON.parse(decoder.decode(msg.data)) as StreamAnswer | null;
  } catch {
    pending.reject(new JetStreamPublishError("invalid PubAck: not JSON", "JETSTREAM_INVALID_ACK"));
    return;
  }
  if (typeof answer !== "object" || answer === null) {
    pending.reject(new JetStreamPublishError("invalid PubAck: not a JSON object", "JETSTREAM_INVALID_ACK"));
    return;
  }
  if (answer.error) {
    const { code, err_code, description = "" } = answer.error;
    pending.reject(
      new JetStreamPublishError(description || `error ${code}`, String(code), {
        code,
        ...(err_code === undefined ? {} : { err_code }),
        description,
      }),
    );
    return;
  }
  if (!answer.stream || typeof answer.seq !== "number") {
    pending.reject(new JetStreamPublishError("invalid PubAck: no stream or sequence", "JETSTREAM_INVALID_ACK"));
    return;
  }
  pending.resolve({
    stream: answer.stream,
    seq: answer.seq,
    duplicate: answer.duplicate === true,
    ...(answer.domain ? { domain: answer.domain } : {}),
  });
}

/** The connection's inbox prefix (connect option `inboxPrefix`), so the reply subject stays within what the
 *  user may subscribe to. */
function inboxPrefixOf(nc: NatsConnection): string | undefined {
  return (nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
}
