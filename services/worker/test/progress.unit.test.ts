import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { checkedReport, ProgressThrottle, type ProgressUpdate, REPORTS_PER_RUN } from "../src/progress.js";

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

function throttled() {
  const published: ProgressUpdate[] = [];
  const throttle = new ProgressThrottle((update) => published.push(update), 250);
  const said = () => published.map(({ percent, report }) => [percent, report.number, report.message ?? ""]);
  return { throttle, published, said };
}

describe("ProgressThrottle", () => {
  test("publishes the first report at once, then at most one per interval: the last report of an interval", () => {
    const { throttle, said } = throttled();
    throttle.report(10.4);
    throttle.report(20); // too soon: kept
    throttle.report(30); // replaces it
    expect(said()).toEqual([[10, 1, ""]]);
    vi.advanceTimersByTime(250);
    expect(said()).toEqual([
      [10, 1, ""],
      [30, 2, ""],
    ]);
    vi.advanceTimersByTime(1_000); // nothing else waited
    expect(said()).toHaveLength(2);
  });

  test("a message at an unchanged percent is a new report; one saying nothing new is not", () => {
    const { throttle, said } = throttled();
    throttle.report(50, "reading");
    vi.advanceTimersByTime(250);
    throttle.report(50, "reading"); // the same: skipped
    throttle.report(50.7, "writing");
    vi.advanceTimersByTime(250);
    throttle.report(50, "writing", { part: 1 });
    vi.advanceTimersByTime(250);
    expect(said()).toEqual([
      [50, 1, "reading"],
      [50, 2, "writing"],
      [50, 3, "writing"],
    ]);
  });

  test("the percent never goes back, is clamped to 0-100, and NaN is ignored", () => {
    const { throttle, said } = throttled();
    throttle.report(60);
    vi.advanceTimersByTime(250);
    throttle.report(40, "back"); // a message still goes out, at the highest percent so far
    vi.advanceTimersByTime(250);
    throttle.report(150);
    vi.advanceTimersByTime(250);
    throttle.report(Number.NaN, "ignored");
    vi.advanceTimersByTime(250);
    expect(said()).toEqual([
      [60, 1, ""],
      [60, 2, "back"],
      [100, 3, ""],
    ]);
  });

  test("a report back to what was last published cancels the one waiting", () => {
    const { throttle, said } = throttled();
    throttle.report(10, "a");
    throttle.report(20, "b");
    throttle.report(10, "a");
    vi.advanceTimersByTime(500);
    expect(said()).toEqual([[10, 1, "a"]]);
  });

  test("details are copied when reported: a later change to the object is not published", () => {
    const { throttle, published } = throttled();
    throttle.report(1);
    const details: Record<string, unknown> = { done: 1 };
    throttle.report(2, undefined, details);
    details.done = 99;
    vi.advanceTimersByTime(250);
    expect(published[1]?.report.details).toEqual({ done: 1 });
  });

  test("a resumed run of the attempt numbers its reports after the earlier runs'", () => {
    const published: ProgressUpdate[] = [];
    const throttle = new ProgressThrottle((update) => published.push(update), 250, Date.now, 2 * REPORTS_PER_RUN);
    throttle.report(10);
    expect(published[0]?.report.number).toBe(2 * REPORTS_PER_RUN + 1);
  });

  test("lastSaid: the last report published, or the one still waiting numbered after it", () => {
    const { throttle } = throttled();
    expect(throttle.lastSaid()).toBeUndefined();
    throttle.report(10, "a");
    expect(throttle.lastSaid()).toMatchObject({ percent: 10, report: { number: 1, message: "a" } });
    throttle.report(20, "b"); // waits for the interval
    expect(throttle.lastSaid()).toMatchObject({ percent: 20, report: { number: 2, message: "b" } });
  });

  test("stop drops the report still waiting and every later one", () => {
    const { throttle, said } = throttled();
    throttle.report(10);
    throttle.report(20);
    throttle.stop();
    throttle.report(30);
    vi.advanceTimersByTime(1_000);
    expect(said()).toEqual([[10, 1, ""]]);
  });
});

describe("checkedReport", () => {
  test("names what a report cannot carry", () => {
    expect(() => checkedReport(5, undefined)).toThrow("reportProgress: message must be a string");
    expect(() => checkedReport("x".repeat(1025), undefined)).toThrow(
      "reportProgress: message is 1025 characters, over 1024",
    );
    expect(() => checkedReport(undefined, [1])).toThrow("reportProgress: details must be a JSON object");
    expect(() => checkedReport(undefined, { big: "y".repeat(5000) })).toThrow(
      /details are 5\d\d\d bytes of JSON, over 4096/,
    );
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => checkedReport(undefined, cycle)).toThrow(/details cannot be written as JSON/);
    expect(() => checkedReport(undefined, { n: 10n })).toThrow(/details cannot be written as JSON/);
  });

  test("a report the throttle refuses throws at the call, even after the attempt ended", () => {
    const throttle = new ProgressThrottle(() => undefined);
    throttle.stop();
    expect(() => throttle.report(1, "x".repeat(2000))).toThrow(RangeError);
    expect(checkedReport("ok", { a: 1 })).toEqual({ message: "ok", detailsJson: '{"a":1}' });
  });
});
