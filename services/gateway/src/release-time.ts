/**
 * A delayed task's release time (SubmitTaskRequest.run_at or delay, the request's `schedule` oneof): when it enters
 * the pipeline. The time is the gateway's (a delay counts from the call's arrival; a run_at is compared with the
 * gateway's clock), bounded by GATEWAY_MAX_DELAY_SECONDS so that a delayed task's records (kept taskTtlSeconds past its
 * release) and its tasks_delayed entry stay bounded. A time already past, or a zero delay, queues the task at once.
 */
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import { durationMsOf, invalid } from "./validation.js";

export type ScheduleRequest =
  | { case: "runAt"; value: Timestamp }
  | { case: "delay"; value: Duration }
  | { case: undefined; value?: undefined };

/** Timestamp's documented range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z. */
const MIN_SECONDS = -62_135_596_800n;
const MAX_SECONDS = 253_402_300_799n;
const NANOS_PER_SECOND = 1_000_000_000;

/**
 * The release time (ms since the epoch) of a delayed task, or undefined to queue it at once. Throws
 * INVALID_ARGUMENT naming the field for a malformed value or one past the maximum delay.
 */
export function releaseTimeOf(schedule: ScheduleRequest, nowMs: number, maxDelaySeconds: number): number | undefined {
  if (schedule.case === undefined) return undefined;
  const maxDelayMs = maxDelaySeconds * 1_000;
  if (schedule.case === "delay") {
    const delayMs = durationMsOf("delay", schedule.value);
    if (delayMs > maxDelayMs) {
      throw invalid(
        "delay",
        `${schedule.value.seconds} s exceeds the maximum of ${maxDelaySeconds} s (GATEWAY_MAX_DELAY_SECONDS)`,
      );
    }
    return delayMs > 0 ? nowMs + delayMs : undefined;
  }
  const { seconds, nanos } = schedule.value;
  if (nanos < 0 || nanos >= NANOS_PER_SECOND) throw invalid("run_at", "nanos must be within 0-999,999,999");
  if (seconds < MIN_SECONDS || seconds > MAX_SECONDS) throw invalid("run_at", "is outside 0001-01-01 to 9999-12-31");
  const runAtMs = Number(seconds) * 1_000 + Math.ceil(nanos / 1_000_000);
  if (runAtMs <= nowMs) return undefined;
  if (runAtMs - nowMs > maxDelayMs) {
    throw invalid(
      "run_at",
      `${new Date(runAtMs).toISOString()} is more than ${maxDelaySeconds} s ahead of the gateway's clock ` +
        `(${new Date(nowMs).toISOString()}; GATEWAY_MAX_DELAY_SECONDS)`,
    );
  }
  return runAtMs;
}
