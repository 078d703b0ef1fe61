import { expect, test } from "vitest";
import { ProgressThrottle } from "../src/progress.js";

test("publishes at most once per interval and only when the integer percent changed", () => {
  let now = 1_000;
  const published: number[] = [];
  const throttle = new ProgressThrottle(
    (p) => published.push(p),
    250,
    () => now,
  );
  throttle.report(10.4); // first change: published
  throttle.report(20); // too soon
  now += 250;
  throttle.report(10.9); // same integer percent as the last published
  throttle.report(30);
  now += 100;
  throttle.report(40); // too soon
  now += 200;
  throttle.report(150); // clamped
  throttle.report(Number.NaN);
  expect(published).toEqual([10, 30, 100]);
});
