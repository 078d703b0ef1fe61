/** The services' logger: an error's message and stack are cut so that a line stays within Loki's limits. */
import { Writable } from "node:stream";
import { expect, test } from "vitest";
import { childWritingTo, createLogger, LOGGED_ERROR_CHARS, writeToDestination } from "../src/logger.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { lines, log: createLogger("test", "info", stream) };
}

test("a huge error is logged cut, saying how much was left out; a small one whole", () => {
  const { lines, log } = capture();
  log.warn({ err: new Error("x".repeat(100_000)) }, "failed");
  log.warn({ err: new Error("small") }, "failed");
  const [huge, small] = lines as Array<{ err: { message: string; stack: string; type: string } }>;
  expect(huge!.err.message).toBe(
    `${"x".repeat(LOGGED_ERROR_CHARS)}… (${100_000 - LOGGED_ERROR_CHARS} more characters)`,
  );
  expect(huge!.err.stack.length).toBeLessThan(LOGGED_ERROR_CHARS + 100);
  expect(huge!.err.type).toBe("Error");
  expect(small!.err.message).toBe("small");
  expect(small!.err.stack).toMatch(/^Error: small\n/);
});

test("whatever else is logged as err (a string, an object, null) is written, not thrown on", () => {
  const { lines, log } = capture();
  log.warn({ err: "connect ECONNREFUSED 127.0.0.1:1" }, "a string");
  log.warn({ err: "y".repeat(20_000) }, "a long string");
  log.warn({ err: { code: 42 } }, "an object");
  log.warn({ err: null }, "null");
  expect(lines.map((line) => line.err)).toEqual([
    "connect ECONNREFUSED 127.0.0.1:1",
    `${"y".repeat(LOGGED_ERROR_CHARS)}… (${20_000 - LOGGED_ERROR_CHARS} more characters)`,
    { code: 42 },
    null,
  ]);
});

test("childWritingTo: the child's lines, with its bindings and its parent's, go to its own writer only; writeToDestination adds to the parent's", () => {
  const parentLines: string[] = [];
  const parent = createLogger(
    "worker",
    "info",
    new Writable({
      write(chunk, _encoding, done) {
        parentLines.push(String(chunk));
        done();
      },
    }),
  ).child({ pool: "gpu" });
  const childLines: string[] = [];
  const child = childWritingTo(parent, { taskId: "t-1" }, (line) => childLines.push(line));
  child.info({ part: 7 }, "from the child");
  child.debug("below the level");
  parent.info("from the parent");
  expect(childLines.map((line) => JSON.parse(line))).toEqual([
    expect.objectContaining({ service: "worker", pool: "gpu", taskId: "t-1", part: 7, msg: "from the child" }),
  ]);
  expect(parentLines.map((line) => JSON.parse(line).msg)).toEqual(["from the parent"]);
  // A grandchild writes where its parent does.
  child.child({ step: 2 }).warn("deeper");
  expect(JSON.parse(childLines.at(-1) ?? "{}")).toMatchObject({ taskId: "t-1", step: 2, msg: "deeper" });
  writeToDestination(parent, childLines[0] ?? "");
  expect(parentLines).toHaveLength(2);
});
