/** `@every <duration>` schedules: the forms read, the refusals named, and the times (multiples since the epoch). */
import { expect, test } from "vitest";
import { intervalMsOf, isInterval, nextIntervalTime } from "../src/schedule-interval.js";
import { latestDueTime, nextRunAfter } from "../src/schedules.js";

test("the interval's forms: s, m, h, d and combinations, case and spacing forgiven", () => {
  expect(intervalMsOf("@every 45s")).toBe(45_000);
  expect(intervalMsOf("@every 90m")).toBe(5_400_000);
  expect(intervalMsOf("@every 1h30m")).toBe(5_400_000);
  expect(intervalMsOf("  @EVERY   2d ")).toBe(172_800_000);
  expect(intervalMsOf("@every 366d")).toBe(366 * 86_400_000);
  expect([isInterval("@every 5m"), isInterval("*/5 * * * *"), isInterval("@daily")]).toEqual([true, false, false]);
});

test("a malformed or out-of-range interval is refused, saying what it should be", () => {
  for (const bad of ["@every", "@every 5", "@every m", "@every 5x", "@every 1h 30m", "@every 5m-", "@every 1.5h"]) {
    expect(() => intervalMsOf(bad), bad).toThrow(RangeError);
  }
  expect(() => intervalMsOf("@every 0s")).toThrow('"@every 0s": the interval must be from 1s to 366d');
  expect(() => intervalMsOf("@every 367d")).toThrow('"@every 367d": the interval must be from 1s to 366d');
});

test("the next time is the next multiple of the interval since the epoch, strictly after the time given", () => {
  const at = Date.parse("2026-12-07T16:20:00Z");
  expect(new Date(nextIntervalTime(5_400_000, at)).toISOString()).toBe("2026-12-07T16:30:00.000Z");
  expect(new Date(nextIntervalTime(5_400_000, Date.parse("2026-12-07T16:30:00Z"))).toISOString()).toBe(
    "2026-12-07T18:00:00.000Z",
  );
  expect(nextRunAfter({ cron: "@every 45s", timezone: "" }, 90_000)).toBe(135_000);
  // A cron expression is still croner's.
  expect(nextRunAfter({ cron: "0 * * * *", timezone: "" }, at)).toBe(Date.parse("2026-12-07T17:00:00Z"));
});

test("missed times make one run, for the latest of them up to now", () => {
  const every = { cron: "@every 30m", timezone: "" };
  const due = Date.parse("2026-12-07T12:00:00Z");
  // No gateway ran from 12:00 to 13:40: the 13:30 time is run, once.
  expect(new Date(latestDueTime(every, due, Date.parse("2026-12-07T13:40:00Z"))).toISOString()).toBe(
    "2026-12-07T13:30:00.000Z",
  );
  // On time: its own time.
  expect(latestDueTime(every, due, due)).toBe(due);
  expect(latestDueTime(every, due, due + 5_000)).toBe(due);
});
