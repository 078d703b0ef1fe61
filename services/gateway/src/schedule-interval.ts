/**
 * Interval schedules: a schedule's cron may be `@every <duration>` (`@every 90m`, `@every 45s`, `@every 1h30m`), as
 * robfig/cron, Asynq's periodic tasks, BullMQ's `repeat.every` and Celery beat's timedelta schedules have it: what a
 * cron expression cannot say (every 90 minutes, every 45 seconds, every 7 hours). The times are the multiples of the
 * interval since 1970-01-01T00:00:00Z, whatever the time zone: every gateway computes the same ones (each run's
 * idempotency key is its time), and an interval that divides a day runs at the same times every day (`@every 90m`:
 * 00:00, 01:30, 03:00 … UTC).
 */

/** The shortest interval (the schedule runner checks every GATEWAY_SCHEDULE_POLL_MS, 1 s) and the longest. */
export const MIN_INTERVAL_MS = 1_000;
export const MAX_INTERVAL_MS = 366 * 24 * 3_600_000;

const EVERY = /^@every\s+(\S+)$/i;
const PART = /(\d+)(d|h|m|s)/gy;
const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000 } as const;

/** Whether a schedule's cron field is an interval (`@every …`), not a cron expression. */
export function isInterval(cron: string): boolean {
  return EVERY.test(cron.trim());
}

/** The interval of `@every <duration>` in ms; throws a RangeError naming the problem for a malformed or out-of-range
 *  one. */
export function intervalMsOf(cron: string): number {
  const text = EVERY.exec(cron.trim())?.[1];
  if (text === undefined) throw new RangeError(`"${cron}" is not "@every <duration>"`);
  let ms = 0;
  PART.lastIndex = 0;
  let read = 0;
  for (let part = PART.exec(text); part; part = PART.exec(text)) {
    ms += Number(part[1]) * UNIT_MS[part[2] as keyof typeof UNIT_MS];
    read = PART.lastIndex;
  }
  if (read === 0 || read !== text.length) {
    throw new RangeError(`"@every ${text}": the interval is a duration such as 45s, 90m, 1h30m or 2d`);
  }
  if (ms < MIN_INTERVAL_MS || ms > MAX_INTERVAL_MS) {
    throw new RangeError(`"@every ${text}": the interval must be from 1s to 366d`);
  }
  return ms;
}

/** The interval's first time after `afterMs`: the next multiple of it since the epoch. */
export function nextIntervalTime(intervalMs: number, afterMs: number): number {
  return (Math.floor(afterMs / intervalMs) + 1) * intervalMs;
}

/** The interval's last time up to `nowMs` (inclusive): the run a gateway that missed several makes now. */
export function latestIntervalTime(intervalMs: number, nowMs: number): number {
  return Math.floor(nowMs / intervalMs) * intervalMs;
}
