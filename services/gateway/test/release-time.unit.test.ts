import { create } from "@bufbuild/protobuf";
import { DurationSchema, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectError } from "@connectrpc/connect";
import { describe, expect, test } from "vitest";
import { releaseTimeOf, type ScheduleRequest } from "../src/release-time.js";
import { rejection } from "./rejection.js";

const NOW = Date.parse("2026-12-05T12:00:00.000Z");
const DAY = 86_400;

const delay = (seconds: bigint, nanos = 0): ScheduleRequest => ({
  case: "delay",
  value: create(DurationSchema, { seconds, nanos }),
});
const runAt = (ms: number, extraNanos = 0): ScheduleRequest => ({
  case: "runAt",
  value: create(TimestampSchema, {
    seconds: BigInt(Math.floor(ms / 1000)),
    nanos: (ms % 1000) * 1_000_000 + extraNanos,
  }),
});

function rejectionOf(schedule: ScheduleRequest): ConnectError {
  return rejection(() => releaseTimeOf(schedule, NOW, DAY));
}

describe("a submission's schedule", () => {
  test("unset, a zero delay or a time already past queue the task at once", () => {
    expect(releaseTimeOf({ case: undefined }, NOW, DAY)).toBeUndefined();
    expect(releaseTimeOf(delay(0n), NOW, DAY)).toBeUndefined();
    expect(releaseTimeOf(runAt(NOW), NOW, DAY)).toBeUndefined();
    expect(releaseTimeOf(runAt(NOW - 60_000), NOW, DAY)).toBeUndefined();
  });

  test("a delay counts from the gateway's clock, to the millisecond (sub-millisecond rounded up)", () => {
    expect(releaseTimeOf(delay(90n), NOW, DAY)).toBe(NOW + 90_000);
    expect(releaseTimeOf(delay(1n, 500_000_000), NOW, DAY)).toBe(NOW + 1_500);
    expect(releaseTimeOf(delay(0n, 1), NOW, DAY)).toBe(NOW + 1);
    expect(releaseTimeOf(delay(BigInt(DAY)), NOW, DAY)).toBe(NOW + DAY * 1000);
  });

  test("a run_at ahead is kept as given", () => {
    expect(releaseTimeOf(runAt(NOW + 3_600_000), NOW, DAY)).toBe(NOW + 3_600_000);
    expect(releaseTimeOf(runAt(NOW + DAY * 1000), NOW, DAY)).toBe(NOW + DAY * 1000);
  });

  test("past the maximum delay is INVALID_ARGUMENT naming the field and the setting", () => {
    const tooLong = rejectionOf(delay(BigInt(DAY), 1));
    expect(tooLong.code).toBe(Code.InvalidArgument);
    expect(tooLong.rawMessage).toBe("delay: 86400 s exceeds the maximum of 86400 s (GATEWAY_MAX_DELAY_SECONDS)");
    const tooFar = rejectionOf(runAt(NOW + DAY * 1000 + 1));
    expect(tooFar.code).toBe(Code.InvalidArgument);
    expect(tooFar.rawMessage).toMatch(
      /^run_at: 2026-12-06T12:00:00\.001Z is more than 86400 s ahead .*GATEWAY_MAX_DELAY_SECONDS/,
    );
  });

  test("malformed values are INVALID_ARGUMENT naming the field", () => {
    expect(rejectionOf(delay(-1n)).rawMessage).toBe("delay: must not be negative");
    expect(rejectionOf(delay(0n, -5)).rawMessage).toBe("delay: must not be negative");
    expect(rejectionOf(delay(1n, 1_000_000_000)).rawMessage).toMatch(/^delay: nanos/);
    expect(rejectionOf(runAt(NOW, -1)).rawMessage).toMatch(/^run_at: nanos/);
    const farFuture = { case: "runAt", value: create(TimestampSchema, { seconds: 253_402_300_800n }) } as const;
    expect(rejectionOf(farFuture).rawMessage).toBe("run_at: is outside 0001-01-01 to 9999-12-31");
  });
});
