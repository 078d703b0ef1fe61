import { Code, ConnectError } from "@connectrpc/connect";
import { expect, test } from "vitest";
import { handleUntilUnavailable } from "../src/batch-outcomes.js";

type Outcome = { item: string; result: string; reason?: string };

const options = {
  unavailable: (item: string, reason: string): Outcome => ({ item, result: "unavailable", reason }),
  nameOf: (item: string) => `task ${item}`,
  outageIn: (outcome: Outcome) => (outcome.result === "done, queue pending" ? outcome.reason : undefined),
};

test("every item is handled in order when nothing fails", async () => {
  const seen: string[] = [];
  const outcomes = await handleUntilUnavailable(
    ["a", "b", "c"],
    async (item): Promise<Outcome> => {
      seen.push(item);
      return { item, result: "done" };
    },
    options,
  );
  expect(seen).toEqual(["a", "b", "c"]);
  expect(outcomes.map((o) => o.result)).toEqual(["done", "done", "done"]);
});

test("the first UNAVAILABLE ends the call there: that item and the later ones are unavailable, not attempted", async () => {
  const seen: string[] = [];
  const outcomes = await handleUntilUnavailable(
    ["a", "b", "c", "d"],
    async (item): Promise<Outcome> => {
      seen.push(item);
      if (item === "b") throw new ConnectError("Redis unavailable while reading the task: timeout", Code.Unavailable);
      return { item, result: "done" };
    },
    options,
  );
  expect(seen).toEqual(["a", "b"]);
  expect(outcomes).toEqual([
    { item: "a", result: "done" },
    { item: "b", result: "unavailable", reason: "Redis unavailable while reading the task: timeout" },
    {
      item: "c",
      result: "unavailable",
      reason: "not attempted: Redis unavailable while reading the task: timeout (at task b); call again",
    },
    {
      item: "d",
      result: "unavailable",
      reason: "not attempted: Redis unavailable while reading the task: timeout (at task b); call again",
    },
  ]);
});

test("any other error still fails the whole call (a bug is not an outage)", async () => {
  const call = handleUntilUnavailable(
    ["a", "b"],
    async (item): Promise<Outcome> => {
      if (item === "a") throw new ConnectError("boom", Code.Internal);
      return { item, result: "done" };
    },
    options,
  );
  await expect(call).rejects.toMatchObject({ code: Code.Internal });
  await expect(
    handleUntilUnavailable(
      ["a"],
      async () => {
        throw new TypeError("x is undefined");
      },
      options,
    ),
  ).rejects.toBeInstanceOf(TypeError);
});

test("an outcome that reveals an outage (handled, its queueing left to the sweeper) ends the call after it", async () => {
  const seen: string[] = [];
  const outcomes = await handleUntilUnavailable(
    ["a", "b", "c"],
    async (item): Promise<Outcome> => {
      seen.push(item);
      return item === "a"
        ? { item, result: "done, queue pending", reason: "NATS connection closed" }
        : { item, result: "done" };
    },
    options,
  );
  expect(seen).toEqual(["a"]);
  expect(outcomes).toEqual([
    { item: "a", result: "done, queue pending", reason: "NATS connection closed" },
    { item: "b", result: "unavailable", reason: "not attempted: NATS connection closed (at task a); call again" },
    { item: "c", result: "unavailable", reason: "not attempted: NATS connection closed (at task a); call again" },
  ]);
});
