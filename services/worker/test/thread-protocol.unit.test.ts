/** Errors across the thread boundary (thread-protocol.ts): what the pipeline reads of them survives the copy. */
import { PermanentError, RateLimitedError } from "@tm/flow";
import { describe, expect, test } from "vitest";
import { recognisedError } from "../src/handler-errors.js";
import { receivedError, sendableError } from "../src/thread-protocol.js";

/** What a structured clone (postMessage) makes of a value. */
const copied = <T>(value: T): T => structuredClone(value);

describe("an error sent between threads", () => {
  test("keeps its name, message, stack and retryAfterMs through a structured clone", () => {
    const thrown = Object.assign(new Error("slow down"), { name: "RateLimitedError", retryAfterMs: 750 });
    const received = receivedError(copied(sendableError(thrown)));
    expect(received).toBeInstanceOf(Error);
    expect(received).toMatchObject({ name: "RateLimitedError", message: "slow down", retryAfterMs: 750 });
    expect(received.stack).toBe(thrown.stack);
    // The name is what the worker recognises: the pipeline's own class again.
    expect(recognisedError(received)).toBeInstanceOf(RateLimitedError);
  });

  test("a class's own name survives where a plain clone loses it", () => {
    const thrown = new PermanentError("never valid");
    expect(copied(thrown).name).toBe("Error");
    expect(recognisedError(receivedError(copied(sendableError(thrown))))).toBeInstanceOf(PermanentError);
  });

  test("a name is not enumerable, as an Error's own is not (logs show the error as before)", () => {
    const received = receivedError({ name: "PermanentError", message: "x" });
    expect(Object.keys(received)).toEqual([]);
  });

  test("something thrown that is not an Error becomes a message saying what it was", () => {
    expect(sendableError("plain text")).toEqual({ name: "Error", message: "plain text" });
    expect(sendableError({ code: 7 })).toEqual({ name: "Error", message: 'non-error thrown: {"code":7}' });
    expect(sendableError(undefined)).toEqual({ name: "Error", message: "non-error thrown: undefined" });
  });
});
