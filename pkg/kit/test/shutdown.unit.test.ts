import { Writable } from "node:stream";
import { afterEach, expect, test, vi } from "vitest";
import { createLogger } from "../src/logger.js";
import { Shutdown } from "../src/shutdown.js";

afterEach(() => vi.useRealTimers());

/** A shutdown whose log lines are kept, parsed. */
function recorded() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { shutdown: new Shutdown(createLogger("test", "info", sink)), lines };
}

test("a step still running after 5 s is named, so a shutdown that hangs says where; a quick one is not", async () => {
  vi.useFakeTimers();
  const { shutdown, lines } = recorded();
  let release = () => {};
  shutdown.add("quick", () => undefined);
  shutdown.add("nats", () => new Promise<void>((resolve) => (release = resolve)));
  const done = shutdown.run("test");
  await vi.advanceTimersByTimeAsync(6_000);
  expect(lines.filter((line) => line.msg === "shutdown step still running").map((line) => line.step)).toEqual(["nats"]);
  release();
  await done;
  expect(lines.at(-1)?.msg).toBe("shut down");
});

test("a failing step is logged and the next ones still run, once however often run is called", async () => {
  const { shutdown, lines } = recorded();
  const ran: string[] = [];
  shutdown.add("broken", () => {
    throw new Error("boom");
  });
  shutdown.add("after", () => void ran.push("after"));
  await Promise.all([shutdown.run("a"), shutdown.run("b")]);
  expect(ran).toEqual(["after"]);
  expect(lines.find((line) => line.msg === "shutdown step failed; continuing")?.step).toBe("broken");
});
