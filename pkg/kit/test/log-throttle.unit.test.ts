import { describe, expect, test } from "vitest";
import { LogThrottle } from "../src/index.js";

describe("LogThrottle", () => {
  test("lets the first warning through, holds back those within the interval, and counts them on the next", () => {
    let now = 1_000;
    const throttle = new LogThrottle(60_000, () => now);
    expect(throttle.pass()).toBe(0);
    now += 1;
    expect(throttle.pass()).toBeUndefined();
    now += 59_998;
    expect(throttle.pass()).toBeUndefined();
    now += 1; // 60 s after the first
    expect(throttle.pass()).toBe(2);
    expect(throttle.pass()).toBeUndefined();
  });

  test("keys are throttled apart, and a reset key's next warning goes through at once", () => {
    let now = 0;
    const throttle = new LogThrottle(10_000, () => now);
    expect(throttle.pass("a")).toBe(0);
    expect(throttle.pass("b")).toBe(0);
    expect(throttle.pass("a")).toBeUndefined();
    throttle.reset("a");
    now += 1;
    expect(throttle.pass("a")).toBe(0);
    expect(throttle.pass("b")).toBeUndefined();
  });
});
