import { describe, expect, test } from "vitest";
import { type BacklogLimitInput, backlogLimitRatio } from "../src/stream-limits.js";

const base: BacklogLimitInput = {
  ackFloorSeq: 0,
  unacknowledged: 1,
  lastSeq: 0,
  messages: 0,
  bytes: 0,
  maxMsgs: 1_000,
  maxBytes: 1_000_000,
  maxAgeMs: 60_000,
  oldestAgeMs: 0,
};

describe("backlogLimitRatio", () => {
  test("no backlog: 0, however full the stream", () => {
    expect(backlogLimitRatio({ ...base, unacknowledged: 0, lastSeq: 5_000, messages: 1_000, bytes: 999_999 })).toBe(0);
  });

  test("by message count: the span from the ack floor to the stream's end against MaxMsgs", () => {
    expect(backlogLimitRatio({ ...base, ackFloorSeq: 4_000, lastSeq: 4_500, messages: 1_000, bytes: 1_000 })).toBe(0.5);
    // Past 1: the oldest unacknowledged messages have been discarded.
    expect(backlogLimitRatio({ ...base, ackFloorSeq: 100, lastSeq: 1_300, messages: 1_000, bytes: 1_000 })).toBe(1.2);
  });

  test("by bytes: the span at the stream's average message size against MaxBytes", () => {
    // 100 messages of 5,000 bytes on average = 500,000 of 1,000,000 bytes.
    const ratio = backlogLimitRatio({ ...base, ackFloorSeq: 900, lastSeq: 1_000, messages: 200, bytes: 1_000_000 });
    expect(ratio).toBe(0.5);
  });

  test("by age: the oldest unacknowledged message's age against MaxAge", () => {
    expect(backlogLimitRatio({ ...base, ackFloorSeq: 9, lastSeq: 10, messages: 10, oldestAgeMs: 45_000 })).toBe(0.75);
  });

  test("the largest share wins; an unlimited limit (-1) counts for nothing", () => {
    const input = { ...base, ackFloorSeq: 0, lastSeq: 300, messages: 300, bytes: 300_000, oldestAgeMs: 6_000 };
    expect(backlogLimitRatio(input)).toBe(0.3); // 300 of 1,000 messages; 300 KB of 1 MB; 6 of 60 s
    expect(backlogLimitRatio({ ...input, maxMsgs: -1, maxBytes: -1 })).toBeCloseTo(0.1);
    expect(backlogLimitRatio({ ...input, maxMsgs: -1, maxBytes: -1, maxAgeMs: 0 })).toBe(0);
  });
});
