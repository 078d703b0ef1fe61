import type { Priority } from "@tm/flow";
import { describe, expect, test } from "vitest";
import { parsePriorityWeights, WeightedPicker } from "../src/weighted-picker.js";

function countPicks(picker: WeightedPicker, picks: number, hasWork: (p: Priority) => boolean) {
  const counts: Record<Priority, number> = { high: 0, medium: 0, low: 0 };
  for (let i = 0; i < picks; i++) {
    const picked = picker.pick(hasWork);
    if (picked) counts[picked]++;
  }
  return counts;
}

describe("WeightedPicker", () => {
  test("with every queue full, picks follow the weights 6,3,1", () => {
    const counts = countPicks(new WeightedPicker(parsePriorityWeights("6,3,1")), 1000, () => true);
    expect(counts.high).toBeGreaterThanOrEqual(599);
    expect(counts.high).toBeLessThanOrEqual(601);
    expect(counts.medium).toBeGreaterThanOrEqual(299);
    expect(counts.medium).toBeLessThanOrEqual(301);
    expect(counts.low).toBeGreaterThanOrEqual(99);
    expect(counts.low).toBeLessThanOrEqual(101);
  });

  test("interleaves: low is served within every window of ten picks", () => {
    const picker = new WeightedPicker(parsePriorityWeights("6,3,1"));
    const sequence = Array.from({ length: 100 }, () => picker.pick(() => true));
    for (let start = 0; start + 10 <= sequence.length; start += 10) {
      expect(sequence.slice(start, start + 10)).toContain("low");
    }
  });

  test("an empty queue's share goes to the others in proportion", () => {
    const counts = countPicks(new WeightedPicker(parsePriorityWeights("6,3,1")), 1000, (p) => p !== "high");
    expect(counts.high).toBe(0);
    expect(counts.medium).toBeGreaterThanOrEqual(749);
    expect(counts.medium).toBeLessThanOrEqual(751);
    expect(counts.low).toBeGreaterThanOrEqual(249);
    expect(counts.low).toBeLessThanOrEqual(251);
  });

  test("a zero-weight queue is served only when the others are empty", () => {
    const picker = new WeightedPicker(parsePriorityWeights("1,0,0"));
    expect(countPicks(picker, 100, () => true)).toEqual({ high: 100, medium: 0, low: 0 });
    expect(picker.pick((p) => p === "low")).toBe("low");
  });

  test("nothing to pick when every queue is empty", () => {
    expect(new WeightedPicker(parsePriorityWeights("6,3,1")).pick(() => false)).toBeUndefined();
  });
});

describe("parsePriorityWeights", () => {
  test("parses high,medium,low with spaces", () => {
    expect(parsePriorityWeights(" 6, 3 ,1")).toEqual({ high: 6, medium: 3, low: 1 });
  });

  test.each(["0,0,0"])("rejects all-zero weights %j", (text) => {
    expect(() => parsePriorityWeights(text)).toThrow(/at least one weight must be greater than 0/);
  });

  test.each(["", "6,3", "6,3,1,1", "a,b,c", "6,-3,1", "1.5,1,1", "6;3;1"])("rejects malformed %j", (text) => {
    expect(() => parsePriorityWeights(text)).toThrow(/three non-negative integers for high,medium,low/);
  });
});
