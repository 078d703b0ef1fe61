/**
 * Runs work for the same key one after another, in the order it was submitted, while different keys run
 * concurrently. A consumer handles many messages at once; chaining each task's messages (ConsumerOptions.orderKey)
 * keeps them in stream order — the notifier must not apply INGESTED after SCHEDULED of the same task, and the audit
 * history of a task must read in order — without giving up concurrency across tasks.
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Runs `work` after every earlier job of `key` has settled; resolves or rejects with its outcome. */
  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(work, work);
    const tail = result.catch(() => undefined);
    this.#tails.set(key, tail);
    // Forget the key once its last job settles, so the map holds only keys with work in flight.
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }

  /** Keys with work queued or running. */
  get size(): number {
    return this.#tails.size;
  }
}
