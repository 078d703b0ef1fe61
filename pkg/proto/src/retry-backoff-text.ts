import { durationMs } from "@bufbuild/protobuf/wkt";
import type { RetryBackoff } from "./gen/taskmanager/v1/taskmanager_pb.js";

/** The longest wait any backoff may have (the gateway's default max_delay), not worth repeating. */
const LONGEST_WAIT_MS = 3_600_000;

/**
 * A task's retry backoff in words, for taskctl get and the console: "after 1 s, ×2 each time up to 5 min, up to 20 %
 * less at random". `duration` formats milliseconds as the caller does elsewhere.
 */
export function retryBackoffText(backoff: RetryBackoff, duration: (ms: number) => string): string {
  const delay = backoff.delay ? durationMs(backoff.delay) : 0;
  const multiplier = backoff.multiplier || 1;
  const maxDelay = backoff.maxDelay ? durationMs(backoff.maxDelay) : LONGEST_WAIT_MS;
  const parts = [`after ${duration(delay)}`];
  if (multiplier !== 1) {
    parts.push(`×${multiplier} each time${maxDelay < LONGEST_WAIT_MS ? ` up to ${duration(maxDelay)}` : ""}`);
  }
  if (backoff.jitter > 0) parts.push(`up to ${Math.round(backoff.jitter * 100)} % less at random`);
  return parts.join(", ");
}
