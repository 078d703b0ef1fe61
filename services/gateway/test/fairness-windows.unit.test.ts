/** GATEWAY_FAIRNESS_WINDOWS: each type's own fairness window, and the refusals that name what is wrong. */
import { TaskTypes } from "@tm/flow";
import { ConfigError } from "@tm/kit";
import { expect, test } from "vitest";
import { fairnessWindows, parseFairnessWindows } from "../src/fairness-windows.js";

test("TYPE=N pairs, spaces allowed, empty for none", () => {
  expect(parseFairnessWindows("")).toEqual(new Map());
  expect(parseFairnessWindows(" sleep = 4 , echo=100000 ")).toEqual(
    new Map([
      ["sleep", 4],
      ["echo", 100_000],
    ]),
  );
});

test.each([
  ["sleep", '"sleep" must be TYPE=N, e.g. "resize=4"'],
  ["sleep=0", '"sleep=0": the window must be a whole number from 1 to 100000'],
  ["sleep=100001", '"sleep=100001": the window must be a whole number from 1 to 100000'],
  ["sleep=2.5", '"sleep=2.5": the window must be a whole number from 1 to 100000'],
  ["sleep=2,sleep=3", '"sleep" is named twice'],
])("%s is refused: %s", (text, message) => {
  expect(() => parseFairnessWindows(text)).toThrow(message);
});

test("a type's own window, else the default; a type the deployment does not run stops the start", () => {
  const windowOf = fairnessWindows(32, parseFairnessWindows("sleep=4"), new TaskTypes());
  expect(windowOf("sleep")).toBe(4);
  expect(windowOf("echo")).toBe(32);
  expect(() => fairnessWindows(32, parseFairnessWindows("resize=4"), new TaskTypes())).toThrow(ConfigError);
  expect(() => fairnessWindows(32, parseFairnessWindows("resize=4"), new TaskTypes())).toThrow(
    'GATEWAY_FAIRNESS_WINDOWS: "resize" is not a task type (known: echo, sleep, checksum, flaky, fail)',
  );
  expect(fairnessWindows(32, parseFairnessWindows("resize=4"), new TaskTypes(["resize"]))("resize")).toBe(4);
});
