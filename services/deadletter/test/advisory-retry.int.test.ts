/**
 * An advisory whose handling fails (here: the dead letter's publish, as when NATS stops answering) is not dropped:
 * the listener NAKs it, nats-server delivers it again after the retry delay, and the second attempt records the
 * letter and fails the task, once. The publisher is the real one on a real connection, wrapped so that its first
 * dead-letter publish fails.
 */
import { metrics } from "@opentelemetry/api";
import {
  ADVISORY_DURABLE,
  ADVISORY_STREAM,
  createPublisher,
  type Publisher,
  provisionStreams,
  STREAMS,
  type StatusEvent,
  Subjects,
} from "@tm/flow";
import { createLogger } from "@tm/kit";
import { useClients, useInfra, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import { listenForMaxDeliveries } from "../src/advisories.js";
import { EXHAUSTED_ERROR } from "../src/advisory.js";
import { crashOnLastDelivery } from "./crash-on-last-delivery.js";

const RETRY_DELAY_MS = 300;
const infra = useInfra();
const clients = useClients(infra);

/** The real publisher, except that its first `failures` publishes of a dead letter reject. */
function failingDeadLetterPublishes(publisher: Publisher, failures: number) {
  const attempts: { msgId: string; at: number }[] = [];
  const faulty: Publisher = {
    publish(subject, message, options) {
      if (subject === Subjects.deadletter) {
        attempts.push({ msgId: options.msgId, at: performance.now() });
        if (attempts.length <= failures) return Promise.reject(new Error("injected: no PubAck"));
      }
      return publisher.publish(subject, message, options);
    },
  };
  return { faulty, attempts };
}

test("an advisory whose handling fails is delivered again after the retry delay and handled once", async () => {
  const nc = clients.nc;
  const jsm = await nc.jetstreamManager();
  await provisionStreams(jsm);
  const { faulty, attempts } = failingDeadLetterPublishes(createPublisher(nc), 1);
  const listener = await listenForMaxDeliveries(
    {
      name: "deadletter",
      nats: { nc, js: nc.jetstream(), jsm, publisher: faulty, onReconnect: () => undefined },
      publisher: faulty,
      log: createLogger("deadletter", "silent"),
      meter: metrics.getMeter("advisory-retry-test"),
    },
    { retryDelayMs: RETRY_DELAY_MS },
  );
  try {
    const { task, replicaPull, letterId: id } = await crashOnLastDelivery(nc);
    expect(await replicaPull).toBeNull();

    await waitFor("the FAILED status event", async () => {
      const last = await jsm.streams.getMessage(STREAMS.events, { last_by_subj: Subjects.status }).catch(() => null);
      const event = last?.json<StatusEvent>();
      return event?.taskId === task.taskId && event.state === "FAILED" && event.error === EXHAUSTED_ERROR;
    });
    // The first attempt failed and the advisory came back: two attempts at the same letter, one of them stored.
    const letterId = `dlq:${id}`;
    expect(attempts.map((attempt) => attempt.msgId)).toEqual([letterId, letterId]);
    // Redelivered after the NAK's delay, not at once (nor after the 30 s ack wait).
    const [first, second] = attempts.map((attempt) => attempt.at);
    expect((second ?? 0) - (first ?? 0)).toBeGreaterThanOrEqual(RETRY_DELAY_MS - 20);
    const letters = (await jsm.streams.info(STREAMS.events, { subjects_filter: Subjects.deadletter })).state.subjects;
    expect(letters).toEqual({ [Subjects.deadletter]: 1 });
    await waitFor("the advisory acknowledged", async () => {
      const info = await jsm.consumers.info(ADVISORY_STREAM, ADVISORY_DURABLE);
      return info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.consumer_seq === 2;
    });
  } finally {
    await listener.stop();
  }
});
