import { expect, test } from "vitest";
import { DurableWatch } from "../src/durable-watch.js";

/** A consumer whose info answers with the given outcomes in turn, counting the calls. */
function consumer(...answers: Array<"ok" | number | Error>) {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    async info() {
      const answer = answers[Math.min(calls++, answers.length - 1)];
      if (answer === "ok") return {} as never;
      if (typeof answer === "number") throw Object.assign(new Error("not found"), { api_error: { err_code: answer } });
      throw answer;
    },
  };
}

test("gone when the consumer (10014) or its stream (10059) is not found; not on an outage or while it exists", async () => {
  expect(await new DurableWatch(consumer(10014), 0).gone()).toBe(true);
  expect(await new DurableWatch(consumer(10059), 0).gone()).toBe(true);
  expect(await new DurableWatch(consumer("ok"), 0).gone()).toBe(false);
  expect(await new DurableWatch(consumer(new Error("TIMEOUT")), 0).gone()).toBe(false);
});

test("asks the server at most once per interval", async () => {
  const c = consumer("ok", 10014);
  const watch = new DurableWatch(c, 60_000);
  expect(await watch.gone()).toBe(false);
  expect(await watch.gone()).toBe(false); // within the interval: not asked
  expect(c.calls).toBe(1);
});
