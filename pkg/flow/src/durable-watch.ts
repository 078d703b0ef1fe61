/**
 * Notices a durable consumer (or its stream) that is gone: deleted by an operator, or lost with a nats-server that
 * came back without its store. nats.js reports a pull on a consumer deleted under it as an empty batch, not as an
 * error (only a pull issued after it is gone may fail "consumer not found"), so a consume loop would pull nothing
 * forever. After an empty pull the loop asks here, which checks the consumer's info at most every `everyMs` (by
 * default a pull's expiry, 5 s: one request per idle pull).
 */
import type { Consumer as NatsConsumer } from "nats";
import { isMissingStreamOrConsumer } from "./streams.js";

export class DurableWatch {
  readonly #consumer: Pick<NatsConsumer, "info">;
  readonly #everyMs: number;
  #checkedAt = 0;

  constructor(consumer: Pick<NatsConsumer, "info">, everyMs = 5_000) {
    this.#consumer = consumer;
    this.#everyMs = everyMs;
  }

  /** True when the durable or its stream no longer exists. An outage is not an answer: false, asked again later. */
  async gone(): Promise<boolean> {
    if (Date.now() - this.#checkedAt < this.#everyMs) return false;
    this.#checkedAt = Date.now();
    try {
      await this.#consumer.info(false);
      return false;
    } catch (error) {
      return isMissingStreamOrConsumer(error);
    }
  }
}
