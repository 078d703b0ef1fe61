/**
 * The JetStream API calls a service makes while it starts (the streams, its durable consumers) are retried while
 * JetStream is still coming up, instead of failing the start: a nats-server cluster that is electing its meta leader
 * or waiting for peers to place an R3 stream answers with a timeout, no responders (503) or "temporarily
 * unavailable" for a few seconds, and under load an R3 create can outlast one request's timeout. The first connect
 * already waits for NATS as long as it takes; this carries that patience through provisioning, bounded so that a
 * real problem (permissions, a conflicting stream) still fails the start with its own message, at once.
 */
import type { Logger } from "./logger.js";

/** nats.js error codes of a request that got no answer in time, or no responder (JetStream not up yet). */
const TRANSIENT_CODES = new Set(["TIMEOUT", "503"]);
/** JetStream API errors of a cluster that is not ready yet: 10008 JSClusterNotAvailErr "JetStream system temporarily
 *  unavailable" (503), 10005 JSClusterNoPeersErrF "no suitable peers for placement" (400: an R3 stream while peers
 *  are still joining; on a cluster that can never place it, the start fails at the deadline with that message), and
 *  10059 JSStreamNotFoundErr "stream not found": every service provisions the streams before its consumers, so at
 *  start-up this is a server whose view of the cluster's metadata has not caught up with a stream just created (seen
 *  in nats-cluster.int.test.ts: a notifier's start failed on it); a stream that really is missing still fails the
 *  start, at the deadline, with that message. */
const TRANSIENT_API_ERRORS = new Set([10008, 10005, 10059]);

export function isTransientJetStreamError(error: unknown): boolean {
  const e = error as { code?: unknown; api_error?: { err_code?: unknown } } | undefined;
  // An answer from the JetStream API says exactly what is wrong: only the cluster-not-ready ones are transient
  // (its HTTP-like code alone is not enough: "JetStream not enabled" is a 503 too, and a configuration problem).
  if (e?.api_error) return typeof e.api_error.err_code === "number" && TRANSIENT_API_ERRORS.has(e.api_error.err_code);
  return typeof e?.code === "string" && TRANSIENT_CODES.has(e.code);
}

export interface StartupRetryOptions {
  log: Pick<Logger, "warn">;
  /** Give up after this long (ms) and fail the start with the last error. */
  deadlineMs?: number;
  /** First pause between attempts (ms); doubles up to 2 s. */
  pauseMs?: number;
}

/** Runs `call`, retrying it while it fails with a transient JetStream error, until `deadlineMs`. */
export async function retryWhileJetStreamStarts<T>(
  step: string,
  call: () => Promise<T>,
  { log, deadlineMs = 60_000, pauseMs = 250 }: StartupRetryOptions,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let pause = pauseMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!isTransientJetStreamError(error)) throw error;
      const message = (error as Error)?.message ?? String(error);
      if (Date.now() + pause > deadline) {
        throw new Error(`${step}: JetStream still not ready after ${attempt} attempts (${message})`, { cause: error });
      }
      log.warn({ step, attempt, err: message, retryInMs: pause }, "JetStream not ready yet; retrying");
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 2_000);
    }
  }
}
