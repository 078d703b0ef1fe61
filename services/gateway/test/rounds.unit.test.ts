import { describe, expect, test } from "vitest";
import { everyInterval } from "../src/rounds.js";

/** A round that starts when the timer fires and ends when `finish` is called (or never). */
function heldRound() {
  let started!: () => void;
  const begun = new Promise<void>((resolve) => {
    started = resolve;
  });
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const round = () => {
    started();
    return finished;
  };
  return { begun, finish, round };
}

describe("everyInterval", () => {
  test("stop waits for the round under way to end", async () => {
    const { begun, finish, round } = heldRound();
    const rounds = everyInterval(5, round, () => undefined, { stopGraceMs: 60_000 });
    await begun;
    const events: string[] = [];
    const stopped = rounds.stop().then(() => events.push("stopped"));
    await new Promise((resolve) => setImmediate(resolve));
    events.push("round ended");
    finish();
    await stopped;
    expect(events).toEqual(["round ended", "stopped"]);
  });

  test("now() runs a round at once, and once more after the one under way however often it is asked meanwhile", async () => {
    const finishes: (() => void)[] = [];
    let started = 0;
    const round = () => {
      started++;
      return new Promise<void>((resolve) => finishes.push(resolve));
    };
    const rounds = everyInterval(3_600_000, round, () => undefined); // the timer never fires within the test
    rounds.now();
    expect(started).toBe(1);
    rounds.now();
    rounds.now();
    expect(started).toBe(1);
    finishes[0]!();
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toBe(2);
    finishes[1]!();
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toBe(2);
    await rounds.stop();
    rounds.now();
    expect(started).toBe(2);
  });

  test("a round held by a dependency that is down does not hold stop past its grace", async () => {
    const { begun, round } = heldRound(); // never finishes, as one waiting on a Redis that is gone
    const rounds = everyInterval(5, round, () => undefined, { stopGraceMs: 20 });
    await begun;
    await rounds.stop(); // the test would time out if this waited for the round
  });
});
