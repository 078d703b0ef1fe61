/**
 * lostCreateRace: which refusals of a stream creation mean "another service created it first" (then provisioning
 * updates it) and which are real errors. The race itself runs against nats-server in streams-race.int.test.ts.
 */
import { NatsError } from "nats";
import { describe, expect, test } from "vitest";
import { lostCreateRace } from "../src/streams.js";

function apiError(description: string, errCode: number): NatsError {
  const error = new NatsError(description, "400");
  error.api_error = { code: 400, err_code: errCode, description };
  return error;
}

describe("lostCreateRace", () => {
  test("a name already in use is a lost race, without asking whether the stream exists", async () => {
    let asked = false;
    const exists = async () => {
      asked = true;
      return false;
    };
    expect(
      await lostCreateRace(apiError("stream name already in use with a different configuration", 10058), exists),
    ).toBe(true);
    expect(asked).toBe(false);
  });

  test("a subject overlap is a lost race when the stream of this name now exists", async () => {
    const overlap = apiError("subjects overlap with an existing stream", 10065);
    expect(await lostCreateRace(overlap, async () => true)).toBe(true);
  });

  test("a subject overlap while no stream of this name exists is a real error (another stream holds the subjects)", async () => {
    const overlap = apiError("subjects overlap with an existing stream", 10065);
    expect(await lostCreateRace(overlap, async () => false)).toBe(false);
  });

  test("other refusals are errors", async () => {
    expect(await lostCreateRace(apiError("insufficient resources", 10023), async () => true)).toBe(false);
    expect(await lostCreateRace(new Error("timeout"), async () => true)).toBe(false);
    expect(await lostCreateRace(undefined, async () => true)).toBe(false);
  });
});
