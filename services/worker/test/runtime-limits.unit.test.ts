/**
 * The operators' run-time limits in the worker: merged over the worker's own (an entry replaces both of its type's
 * fleet-wide limits; unknown types ignored), and applied to TypeLimits, which starts and stops tracking a type
 * without a restart.
 */
import type { Logger } from "@tm/kit";
import { waitFor } from "@tm/testkit";
import type { JsMsg } from "nats";
import { expect, test, vi } from "vitest";
import { effectiveLimits } from "../src/runtime-limits.js";
import { TypeLimits } from "../src/type-limits.js";

const rate = (perSecond: number, burst = 1) => ({ perSecond, burst });
const entry = (
  type: string,
  limits: { globalConcurrency?: number; rate?: { perSecond: number; burst: number }; paused?: boolean },
) => ({
  type,
  ...limits,
  at: "",
  by: "",
});

test("a run-time entry replaces both of its type's own limits; other types keep theirs; unknown types are ignored", () => {
  const own = {
    globalConcurrency: new Map([
      ["checksum", 4],
      ["sleep", 2],
    ]),
    rates: new Map([["checksum", rate(10)]]),
  };
  const merged = effectiveLimits(
    own,
    [
      entry("checksum", { globalConcurrency: 1 }),
      entry("echo", { rate: rate(0.5, 2) }),
      entry("email", { globalConcurrency: 3 }),
    ],
    ["echo", "sleep", "checksum"],
  );
  expect([...merged.globalConcurrency].sort()).toEqual([
    ["checksum", 1],
    ["sleep", 2],
  ]);
  expect([...merged.rates]).toEqual([["echo", rate(0.5, 2)]]); // checksum's own rate replaced by "none"
  // The worker's own maps are not changed.
  expect(own.rates.get("checksum")).toEqual(rate(10));
  expect(effectiveLimits(own, [], ["checksum"])).toEqual({ ...own, paused: new Set() });
  // An operator's pause: the type's entry may hold it alone (no other limit), and only known types count.
  const paused = effectiveLimits(
    own,
    [entry("sleep", { paused: true }), entry("email", { paused: true })],
    ["sleep", "checksum"],
  );
  expect([...(paused.paused ?? [])]).toEqual(["sleep"]);
  expect(paused.globalConcurrency.has("sleep")).toBe(false); // its entry replaced its own limits, as any entry does
});

test("TypeLimits.update: a type gains a rate (tracked from then on, and held for its turn), then loses it", async () => {
  const encoder = new TextEncoder();
  const msgOf = () => ({ data: encoder.encode(JSON.stringify({ type: "echo" })) }) as unknown as JsMsg;
  const asked: Array<(waitMs: number) => void> = [];
  const gate = new TypeLimits({
    concurrency: new Map(),
    rates: new Map(),
    reserve: () => new Promise<number>((answer) => asked.push(answer)),
    wake: vi.fn(),
    log: { warn: vi.fn(), info: vi.fn(), debug: vi.fn() } as unknown as Logger,
    now: () => 1_000,
  });
  expect(gate.active).toBe(false);
  const before = msgOf();
  gate.buffered(before);

  gate.update({ rates: new Map([["echo", rate(1)]]), globalConcurrency: new Map() });
  expect(gate.active).toBe(true);
  expect(gate.limitedTypes).toEqual(["echo"]);
  expect(gate.admit(before)).toBe(true); // buffered while unlimited: not tracked
  const after = msgOf();
  gate.buffered(after);
  expect(gate.typeOf(after)).toBe("echo");
  expect(gate.admit(after)).toBe(false); // reserving its turn
  expect(asked).toHaveLength(1);

  gate.update({ rates: new Map(), globalConcurrency: new Map() });
  expect(gate.active).toBe(false);
  expect(gate.admit(after)).toBe(true); // no rate any more: it starts without waiting for the answer
  gate.started(after);
  asked[0]?.(500); // the late answer changes nothing
  gate.finished(after);
  expect(gate.running("echo")).toBe(0);
});

test("followRuntimeLimits applies a change once, keeps the limits last applied while Redis cannot be read, then goes on", async () => {
  const { followRuntimeLimits } = await import("../src/runtime-limits.js");
  let reads = 0;
  let answer: () => Promise<Record<string, string>> = async () => ({
    sleep: JSON.stringify({ globalConcurrency: 1, at: "", by: "" }),
  });
  const redis = {
    hgetall: () => {
      reads++;
      return answer();
    },
  } as unknown as Parameters<typeof followRuntimeLimits>[0];
  const update = vi.fn();
  const log = { info: vi.fn(), debug: vi.fn(), warn: vi.fn() } as unknown as Logger;
  const own = { globalConcurrency: new Map<string, number>(), rates: new Map() };
  const follower = followRuntimeLimits(redis, { update }, own, ["sleep"], 5, log);
  try {
    await follower.ready;
    expect(update).toHaveBeenCalledTimes(1);
    expect([...update.mock.calls[0]![0].globalConcurrency]).toEqual([["sleep", 1]]);
    // The same limits on the next polls: nothing applied again.
    const seen = reads;
    await waitFor("two more polls", async () => reads >= seen + 2);
    expect(update).toHaveBeenCalledTimes(1);

    answer = () => Promise.reject(new Error("Connection is closed."));
    const failing = reads;
    await waitFor("polls while Redis fails", async () => reads >= failing + 2);
    expect(update).toHaveBeenCalledTimes(1); // not reset to the worker's own

    answer = async () => ({});
    await waitFor("the cleared limit applied", async () => update.mock.calls.length === 2);
    expect([...update.mock.calls[1]![0].globalConcurrency]).toEqual([]);
  } finally {
    follower.stop();
  }
});
