/**
 * FleetSlots (fleet-wide concurrency per type) with a store answered by the test, and TypeLimits using it: a slot is
 * asked once per type at a time, paced after a refusal, held until the task ends and then given back; a slot got for
 * a delivery handed back meanwhile goes straight back; leases are renewed for the slots held.
 */
import type { Logger } from "@tm/kit";
import type { JsMsg } from "nats";
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { FleetSlots, type SlotClaim } from "../src/fleet-slots.js";
import { TypeLimits } from "../src/type-limits.js";

const log = { warn: vi.fn(), info: vi.fn(), debug: vi.fn() } as unknown as Logger;
const encoder = new TextEncoder();

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function fleet(limits: Record<string, number> = { sleep: 1 }, now?: () => number) {
  const takes: Array<{ type: string; holder: string; answer(got: boolean): void }> = [];
  const released: string[] = [];
  const renewed: Array<{ type: string; holders: string[] }> = [];
  const wake = vi.fn();
  const slots = new FleetSlots({
    limits: new Map(Object.entries(limits)),
    store: {
      take: (type, holder) => new Promise<boolean>((answer) => takes.push({ type, holder, answer })),
      renew: async (type, holders) => {
        renewed.push({ type, holders });
        return holders.length;
      },
      release: async (_type, holder) => {
        released.push(holder);
      },
    },
    wake,
    log,
    now,
    retryMs: 250,
    renewEveryMs: 10_000,
  });
  return { slots, takes, released, renewed, wake };
}

const claim = (holder: string, type = "sleep"): SlotClaim => ({ type, holder });

test("uncontended, every claim asks at once; a slot got is held until released, then given back", async () => {
  const { slots, takes, released, wake } = fleet({ sleep: 2 });
  const [a, b] = [claim("a"), claim("b")];
  expect(slots.acquire(a)).toBe(false);
  expect(slots.acquire(b)).toBe(false);
  expect(slots.acquire(a)).toBe(false); // its take is in flight: not asked twice
  expect(takes.map((t) => t.holder)).toEqual(["a", "b"]);
  takes[0]?.answer(true);
  await vi.advanceTimersByTimeAsync(0);
  expect(wake).toHaveBeenCalledTimes(1);
  expect(slots.acquire(a)).toBe(true);
  slots.release(a);
  await vi.advanceTimersByTimeAsync(0);
  expect(released).toEqual(["a"]);
});

test("contended (a take refused), the type is asked one take at a time until one succeeds", async () => {
  const { slots, takes } = fleet({ sleep: 1 });
  const [a, b, c] = [claim("a"), claim("b"), claim("c")];
  slots.acquire(a);
  takes[0]?.answer(false);
  await vi.advanceTimersByTimeAsync(250);
  slots.acquire(b);
  expect(slots.acquire(c)).toBe(false); // b's take is the one in flight
  expect(takes.map((t) => t.holder)).toEqual(["a", "b"]);
  takes[1]?.answer(true); // contention over
  await vi.advanceTimersByTimeAsync(0);
  slots.acquire(c);
  slots.acquire(a);
  expect(takes.map((t) => t.holder)).toEqual(["a", "b", "c", "a"]);
});

test("after a refusal the type is not asked for again before retryMs; then the dispatcher is woken to ask", async () => {
  const { slots, takes, wake } = fleet();
  const a = claim("a");
  slots.acquire(a);
  takes[0]?.answer(false);
  await vi.advanceTimersByTimeAsync(0);
  expect(slots.acquire(a)).toBe(false);
  expect(takes).toHaveLength(1);
  await vi.advanceTimersByTimeAsync(250);
  expect(wake).toHaveBeenCalledTimes(1);
  expect(slots.acquire(a)).toBe(false);
  expect(takes).toHaveLength(2);
});

test("a wake-up that comes a millisecond early (the timer before the clock) arms another instead of stalling", async () => {
  let lag = 0;
  const { slots, takes, wake } = fleet({ sleep: 1 }, () => Date.now() - lag);
  const a = claim("a");
  slots.acquire(a);
  takes[0]?.answer(false);
  await vi.advanceTimersByTimeAsync(0);
  lag = 1; // from now on the clock reads a millisecond behind the timers
  await vi.advanceTimersByTimeAsync(250);
  expect(wake).toHaveBeenCalledTimes(1);
  expect(slots.acquire(a)).toBe(false); // still a millisecond early by its clock: no take, a wake-up set
  expect(takes).toHaveLength(1);
  await vi.advanceTimersByTimeAsync(2);
  expect(wake).toHaveBeenCalledTimes(2);
  expect(slots.acquire(a)).toBe(false);
  expect(takes).toHaveLength(2);
});

test("a slot got for a claim given up meanwhile goes straight back", async () => {
  const { slots, takes, released } = fleet();
  const a = claim("a");
  slots.acquire(a);
  slots.release(a); // handed back while its take is in flight
  takes[0]?.answer(true);
  await vi.advanceTimersByTimeAsync(0);
  expect(released).toEqual(["a"]);
});

test("the leases of the slots held are renewed each round, by type", async () => {
  const { slots, takes, renewed } = fleet({ sleep: 2, checksum: 1 });
  slots.start();
  try {
    for (const c of [claim("a"), claim("c", "checksum")]) {
      slots.acquire(c);
      takes.at(-1)?.answer(true);
      await vi.advanceTimersByTimeAsync(0);
    }
    await vi.advanceTimersByTimeAsync(10_000);
    expect(renewed).toEqual([
      { type: "sleep", holders: ["a"] },
      { type: "checksum", holders: ["c"] },
    ]);
  } finally {
    slots.stop();
  }
});

test("TypeLimits: a fleet-limited delivery starts only with a slot, counts against this worker's own limit while it asks, and gives the slot back when it ends", async () => {
  const { slots, takes, released } = fleet({ sleep: 1 });
  const gate = new TypeLimits({
    concurrency: new Map([["sleep", 1]]),
    rates: new Map(),
    slots,
    reserve: async () => 0,
    wake: () => undefined,
    log,
  });
  const [a, b] = [1, 2].map(() => ({ data: encoder.encode('{"type":"sleep"}') }) as unknown as JsMsg) as [JsMsg, JsMsg];
  gate.buffered(a);
  gate.buffered(b);
  expect(gate.admit(a)).toBe(false); // asking
  expect(gate.waiting(a)).toBe(true);
  expect(gate.admit(b)).toBe(false); // this worker's limit (1) is a's claim
  takes[0]?.answer(true);
  await vi.advanceTimersByTimeAsync(0);
  expect(gate.admit(a)).toBe(true);
  gate.started(a);
  expect(gate.admit(b)).toBe(false);
  gate.finished(a);
  await vi.advanceTimersByTimeAsync(0);
  expect(released).toHaveLength(1);
  expect(gate.admit(b)).toBe(false); // now b asks
  expect(takes).toHaveLength(2);
});
