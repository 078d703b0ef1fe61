import { expect, test } from "vitest";
import { stateCountsText } from "../src/state-counts-text.js";

test("counts by state in the lifecycle's order, zeros left out, a name this build does not know last", () => {
  expect(stateCountsText({ CANCELLED: 1, SUCCEEDED: 80, PENDING: 3, RUNNING: 0, FAILED: 2 })).toBe(
    "3 pending, 80 succeeded, 2 failed, 1 cancelled",
  );
  expect(stateCountsText({ PAUSED: 4, RUNNING: 1 })).toBe("1 running, 4 paused");
  expect(stateCountsText({})).toBe("");
});
