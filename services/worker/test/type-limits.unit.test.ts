/**
 * TypeLimits, the dispatcher's per-type gate, with a fake clock and reservations answered by the test: concurrency
 * counts running tasks and granted turns; a rate-limited delivery reserves its turn once and starts when it comes;
 * a failed reservation is asked again later; nothing is read or held for types without a limit.
 */
import type { Logger } from "@tm/kit";
import type { TypeRate } from "@tm/store";
import type { JsMsg } from "nats";
import { expect, test, vi } from "vitest";
import { TypeLimits } from "../src/type-limits.js";

const encoder = new TextEncoder();
const msgOf = (body: unknown) => ({ data: encoder.encode(JSON.stringify(body)) }) as unknown as JsMsg;
const log = { warn: vi.fn(), info: vi.fn(), debug: vi.fn() } as unknown as Logger;

function limits(options: { concurrency?: Record<string, number>; rates?: Record<string, TypeRate> } = {}) {
  let now = 1_000;
  const asked: Array<{ type: string; answer(waitMs: number): void; fail(error: Error): void }> = [];
  const wake = vi.fn();
  const gate = new TypeLimits({
    concurrency: new Map(Object.entries(options.concurrency ?? {})),
    rates: new Map(Object.entries(options.rates ?? {})),
    reserve: (type) =>
      new Promise<number>((answer, fail) => {
        asked.push({ type, answer, fail });
      }),
    wake,
    log,
    now: () => now,
    retryMs: 0, // a failed reservation wakes the dispatcher at once (no timer in these tests)
  });
  return { gate, asked, wake, advance: (ms: number) => (now += ms) };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

/** A delivery of `body` entering the gate's buffer. */
function buffer(gate: TypeLimits, body: unknown): JsMsg {
  const msg = msgOf(body);
  gate.buffered(msg);
  return msg;
}

test("without limits nothing is read: every delivery may start", () => {
  const { gate } = limits();
  expect(gate.active).toBe(false);
  const msg = buffer(gate, { type: "checksum" });
  expect(gate.typeOf(msg)).toBeUndefined();
  expect(gate.admit(msg)).toBe(true);
});

test("only limited types are tracked; a body that is not JSON passes to its processor (which dead-letters it)", () => {
  const { gate } = limits({ concurrency: { checksum: 1 } });
  expect(gate.typeOf(buffer(gate, { type: "checksum" }))).toBe("checksum");
  expect(gate.typeOf(buffer(gate, { type: "echo" }))).toBeUndefined();
  const garbage = { data: encoder.encode("{not json") } as unknown as JsMsg;
  gate.buffered(garbage);
  expect(gate.typeOf(garbage)).toBeUndefined();
  expect(gate.admit(garbage)).toBe(true);
});

test("concurrency: at most N of a type run at once; a finished one makes room", () => {
  const { gate } = limits({ concurrency: { checksum: 2 } });
  const [a, b, c] = [1, 2, 3].map(() => buffer(gate, { type: "checksum" })) as [JsMsg, JsMsg, JsMsg];
  for (const entry of [a, b]) {
    expect(gate.admit(entry)).toBe(true);
    gate.started(entry);
  }
  expect(gate.admit(c)).toBe(false);
  expect(gate.waiting(c)).toBe(true);
  expect(gate.running("checksum")).toBe(2);
  gate.finished(a);
  expect(gate.typeOf(a)).toBeUndefined(); // no longer tracked
  expect(gate.waiting(c)).toBe(false);
  expect(gate.admit(c)).toBe(true);
});

test("rate: a delivery reserves its turn once, waits for it, and starts when it comes", async () => {
  const { gate, asked, wake, advance } = limits({ rates: { echo: { perSecond: 10, burst: 1 } } });
  const entry = buffer(gate, { type: "echo" });
  expect(gate.admit(entry)).toBe(false);
  expect(gate.admit(entry)).toBe(false); // asked once, not again while the answer is pending
  expect(asked.map((a) => a.type)).toEqual(["echo"]);
  expect(gate.waiting(entry)).toBe(true);

  asked[0]?.answer(0); // its turn is now
  await settle();
  expect(wake).toHaveBeenCalledTimes(1);
  expect(gate.admit(entry)).toBe(true);
  gate.started(entry);
  expect(gate.running("echo")).toBe(1);

  const later = buffer(gate, { type: "echo" });
  expect(gate.admit(later)).toBe(false);
  vi.useFakeTimers();
  try {
    asked[1]?.answer(100); // its turn in 100 ms
    await vi.advanceTimersByTimeAsync(0);
    expect(wake).toHaveBeenCalledTimes(2); // the dispatcher looks again at once ...
    expect(gate.admit(later)).toBe(false); // ... too early: a wake-up is armed for the turn
    expect(gate.admit(later)).toBe(false); // (once)
    advance(99);
    await vi.advanceTimersByTimeAsync(101);
    expect(wake).toHaveBeenCalledTimes(3);
    // The timer fired while the clock still read a millisecond early: the look arms another wake-up.
    expect(gate.admit(later)).toBe(false);
    advance(1);
    await vi.advanceTimersByTimeAsync(2);
    expect(wake).toHaveBeenCalledTimes(4);
    expect(gate.admit(later)).toBe(true);
  } finally {
    vi.useRealTimers();
  }
});

test("rate and concurrency together: a granted turn counts against the concurrency limit until it starts", async () => {
  const { gate, asked } = limits({ concurrency: { sleep: 1 }, rates: { sleep: { perSecond: 1, burst: 5 } } });
  const [a, b] = [1, 2].map(() => buffer(gate, { type: "sleep" })) as [JsMsg, JsMsg];
  expect(gate.admit(a)).toBe(false); // reserving
  expect(gate.admit(b)).toBe(false); // a's reservation holds the one slot: b does not reserve
  expect(asked).toHaveLength(1);
  asked[0]?.answer(0);
  await settle();
  expect(gate.admit(a)).toBe(true);
  gate.started(a);
  expect(gate.admit(b)).toBe(false);
  expect(asked).toHaveLength(1);
  gate.finished(a);
  expect(gate.admit(b)).toBe(false); // now it reserves
  expect(asked).toHaveLength(2);
});

test("a failed reservation (Redis unreachable) is logged, holds the delivery, and is asked again", async () => {
  const { gate, asked, wake } = limits({ rates: { echo: { perSecond: 10, burst: 1 } } });
  const entry = buffer(gate, { type: "echo" });
  expect(gate.admit(entry)).toBe(false);
  asked[0]?.fail(new Error("Connection is closed."));
  await settle();
  expect(log.warn).toHaveBeenCalled();
  expect(wake).toHaveBeenCalledTimes(1);
  expect(gate.admit(entry)).toBe(false); // asks again
  expect(asked).toHaveLength(2);
});

test("a delivery handed back before it started frees its reservation's place", async () => {
  const { gate, asked } = limits({ concurrency: { sleep: 1 }, rates: { sleep: { perSecond: 1, burst: 1 } } });
  const [a, b] = [1, 2].map(() => buffer(gate, { type: "sleep" })) as [JsMsg, JsMsg];
  gate.admit(a);
  asked[0]?.answer(5_000);
  await settle();
  gate.dropped(a);
  gate.stop();
  expect(gate.admit(b)).toBe(false); // reserves: a no longer holds the slot
  expect(asked).toHaveLength(2);
});

test("pause: a type rate limited downstream starts nothing until the wait is over; one buffered before is tracked again", async () => {
  const { gate, advance, wake } = limits();
  const before = buffer(gate, { type: "flaky" }); // no limit yet: not even read
  expect(gate.typeOf(before)).toBeUndefined();
  const version = gate.version;
  gate.pause("flaky", 1_000 + 500);
  expect(gate.active).toBe(true);
  expect(gate.version).not.toBe(version); // the dispatcher tracks its queue again:
  gate.buffered(before);
  expect(gate.typeOf(before)).toBe("flaky");
  const other = buffer(gate, { type: "echo" });
  expect(gate.admit(other)).toBe(true); // other types are not paused
  expect(gate.admit(before)).toBe(false);
  expect(gate.waiting(before)).toBe(true); // its lane may pull for the free slot
  expect(gate.limitedTypes).toEqual(["flaky"]);
  gate.pause("flaky", 1_200); // an earlier end does not shorten it
  advance(499);
  expect(gate.admit(before)).toBe(false);
  advance(1);
  expect(gate.admit(before)).toBe(true);
  expect(gate.active).toBe(false); // the pause is over and no other limit is set: nothing is read again
  expect(gate.limitedTypes).toEqual([]);
  gate.started(before);
  gate.finished(before);
  expect(gate.running("flaky")).toBe(0);

  // The dispatcher is woken when a pause ends (a real timer, of the pause's length).
  wake.mockClear();
  gate.pause("flaky", 1_500 + 20);
  await vi.waitFor(() => expect(wake).toHaveBeenCalled(), { timeout: 5_000 });
  gate.stop();
});

test("an operator's change at run time changes the version: deliveries buffered before are tracked again", () => {
  const { gate } = limits();
  const before = buffer(gate, { type: "checksum" });
  expect(gate.typeOf(before)).toBeUndefined(); // no limit: not even read
  const version = gate.version;
  gate.update({ rates: new Map([["checksum", { perSecond: 1, burst: 1 }]]), globalConcurrency: new Map() });
  expect(gate.version).not.toBe(version);
  gate.buffered(before); // what the dispatcher does on a new version
  expect(gate.typeOf(before)).toBe("checksum");
  expect(gate.admit(before)).toBe(false); // it waits for its turn like any other
  gate.stop();
});

test("an operator's pause holds every delivery of the type until an update lifts it, which wakes the dispatcher", () => {
  const { gate, wake } = limits();
  const queued = buffer(gate, { type: "sleep" });
  gate.update({ rates: new Map(), globalConcurrency: new Map(), paused: new Set(["sleep"]) });
  gate.buffered(queued); // the dispatcher's second look
  const other = buffer(gate, { type: "echo" });
  expect(gate.admit(queued)).toBe(false);
  expect(gate.waiting(queued)).toBe(true);
  expect(gate.admit(other)).toBe(true);
  expect(gate.limitsOf("sleep")).toEqual({ paused: true });
  expect(gate.limitedTypes).toEqual(["sleep"]);
  wake.mockClear();
  gate.update({ rates: new Map(), globalConcurrency: new Map() });
  expect(wake).toHaveBeenCalled();
  expect(gate.admit(queued)).toBe(true);
  expect(gate.limitsOf("sleep")).toEqual({});
  gate.stop();
});
