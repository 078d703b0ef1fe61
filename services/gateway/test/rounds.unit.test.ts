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

  test("a round held by a dependency that is down does not hold stop past its grace", async () => {
    const { begun, round } = heldRound(); // never finishes, as one waiting on a Redis that is gone
    const rounds = everyInterval(5, round, () => undefined, { stopGraceMs: 20 });
    await begun;
    await rounds.stop(); // the test would time out if this waited for the round
  });
});
