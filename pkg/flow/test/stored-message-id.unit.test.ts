/**
 * storedMessageId, the id of a stored message for dead letters and the audit's redelivery markers: the sequence and
 * the stored time, read exactly from the ack subject (old and new formats) so that it agrees with the deadletter
 * service's id from the stored message's RFC 3339 time, even where nats.js's float nanoseconds round into the next ms.
 */
import type { JsMsg } from "nats";
import { expect, test } from "vitest";
import { messageIdOf } from "../src/consume.js";
import { storedMessageId } from "../src/streams.js";

const delivered = (reply: string, timestampNanos: number, streamSequence = 57) =>
  ({ reply, info: { streamSequence, timestampNanos } }) as unknown as JsMsg;

test("the sequence and the stored ms; the sequence alone when the time is unknown", () => {
  expect(storedMessageId("TASKS", 57, 1_765_029_600_123.9)).toBe("TASKS:57:1765029600123");
  expect(storedMessageId("TASKS", 57, undefined)).toBe("TASKS:57");
  expect(storedMessageId("TASKS", 57, Number.NaN)).toBe("TASKS:57");
});

test("a delivery's id reads its stored time exactly from the ack subject, as Date.parse does from the stored time", () => {
  const nanos = "1765029600123999999"; // 0.999999 ms past: nats.js's float rounds it into the next ms
  const rfc3339 = "2025-12-06T14:00:00.123999999Z";
  const expected = storedMessageId("TASKS", 57, Date.parse(rfc3339));
  expect(expected).toBe("TASKS:57:1765029600123");
  const asFloat = Number.parseInt(nanos, 10);
  expect(Math.floor(asFloat / 1e6)).toBe(1_765_029_600_124); // why the float is not used
  const newFormat = `$JS.ACK._.ACCOUNTHASH.TASKS.worker-tasks-worker-high.1.57.3.${nanos}.0.RANDOM`;
  const oldFormat = `$JS.ACK.TASKS.worker-tasks-worker-high.1.57.3.${nanos}.0`;
  expect(messageIdOf(delivered(newFormat, asFloat), "tasks.worker.high")).toBe(expected);
  expect(messageIdOf(delivered(oldFormat, asFloat), "tasks.worker.high")).toBe(expected);
  // No usable ack subject: the float, to the ms.
  expect(messageIdOf(delivered("", asFloat), "events.audit")).toBe("EVENTS:57:1765029600124");
});
