/**
 * The publisher that shares one reply subscription for every JetStream publish, against a real nats-server: what
 * each kind of answer (PubAck, duplicate, stream error, no stream, no answer) becomes, that nothing stays pending,
 * and that createPublisher's retry still reads its failures as nats.js's were read.
 */
import { startNats, useInfra, waitFor } from "@tm/testkit";
import { connect, type NatsConnection, RetentionPolicy, StorageType } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { encodeHeaders } from "../src/headers.js";
import {
  createPublisher,
  isTransientNatsError,
  JetStreamPublishError,
  JetStreamPublisher,
  provisionStreams,
  Subjects,
} from "../src/index.js";

const infra = useInfra();
let nc: NatsConnection;

beforeAll(async () => {
  nc = await connect({ servers: infra.nats.url });
});
afterAll(async () => {
  await nc?.drain();
});

const encoder = new TextEncoder();

/** A memory stream of its own for each test: `<prefix>.>`. */
async function stream(options: { maxMsgSize?: number } = {}) {
  const name = `P${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({
    name,
    subjects: [`${name.toLowerCase()}.>`],
    storage: StorageType.Memory,
    retention: RetentionPolicy.Limits,
    ...(options.maxMsgSize ? { max_msg_size: options.maxMsgSize } : {}),
  });
  return { name, subject: `${name.toLowerCase()}.a` };
}

function msgIdHeader(id: string) {
  return encodeHeaders([["Nats-Msg-Id", id]]);
}

async function failureOf(promise: Promise<unknown>): Promise<JetStreamPublishError> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome, "the publish should have failed").toBeInstanceOf(JetStreamPublishError);
  return outcome as JetStreamPublishError;
}

describe("JetStreamPublisher", () => {
  test("acknowledges every publish of a burst with its own sequence, and keeps nothing pending", async () => {
    const { name, subject } = await stream();
    const publisher = new JetStreamPublisher(nc);
    const acks = await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        publisher.publish(subject, encoder.encode(`{"n":${i}}`), msgIdHeader(`burst-${i}`), 5_000),
      ),
    );
    expect(acks.every((ack) => ack.stream === name && ack.duplicate === false)).toBe(true);
    expect(new Set(acks.map((ack) => ack.seq)).size).toBe(500);
    expect(Math.max(...acks.map((ack) => ack.seq))).toBe(500);
    expect(publisher.pendingCount).toBe(0);
  });

  test("a repeated message id is acknowledged as a duplicate of the first, which the stream keeps alone", async () => {
    const { name, subject } = await stream();
    const publisher = new JetStreamPublisher(nc);
    const first = await publisher.publish(subject, encoder.encode("1"), msgIdHeader("same"), 5_000);
    const again = await publisher.publish(subject, encoder.encode("2"), msgIdHeader("same"), 5_000);
    expect(first).toMatchObject({ stream: name, seq: 1, duplicate: false });
    expect(again).toMatchObject({ stream: name, seq: 1, duplicate: true });
    const info = await (await nc.jetstreamManager()).streams.info(name);
    expect(info.state.messages).toBe(1);
  });

  test("a subject no stream takes fails at once with 503, which the retry policy treats as transient", async () => {
    const publisher = new JetStreamPublisher(nc);
    const started = Date.now();
    const error = await failureOf(publisher.publish("nostream.here", encoder.encode("x"), msgIdHeader("n"), 10_000));
    expect(error.code).toBe("503");
    expect(error.message).toContain("nostream.here");
    expect(isTransientNatsError(error)).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000); // the server's answer, not the timeout
    expect(publisher.pendingCount).toBe(0);
  });

  test("a stream's refusal carries its code and description, and is not retried", async () => {
    const { subject } = await stream({ maxMsgSize: 16 });
    const publisher = new JetStreamPublisher(nc);
    const error = await failureOf(
      publisher.publish(subject, encoder.encode("x".repeat(100)), msgIdHeader("big"), 5_000),
    );
    expect(error.apiError?.code).toBe(400);
    expect(error.code).toBe("400");
    expect(error.message).toMatch(/size/i);
    expect(typeof error.apiError?.err_code).toBe("number");
    expect(isTransientNatsError(error)).toBe(false);
  });

  test("no answer fails with TIMEOUT after the timeout; an answer that comes later is ignored", async () => {
    const subject = `silent.${crypto.randomUUID()}`;
    // A plain subscriber takes the subject, so the server reports no "no responders"; it answers only later.
    let replied = false;
    const late = nc.subscribe(subject, {
      callback: (_error, msg) => {
        setTimeout(() => {
          msg.respond(encoder.encode('{"stream":"LATE","seq":1}'));
          replied = true;
        }, 400);
      },
    });
    const publisher = new JetStreamPublisher(nc);
    const started = Date.now();
    const error = await failureOf(publisher.publish(subject, encoder.encode("x"), msgIdHeader("t"), 150));
    expect(error.code).toBe("TIMEOUT");
    expect(isTransientNatsError(error)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(publisher.pendingCount).toBe(0);
    await waitFor("the late answer", () => replied, { timeoutMs: 5_000 });
    await nc.flush();
    expect(publisher.pendingCount).toBe(0);
    late.unsubscribe();
  });

  test("an answer that is not a PubAck fails its publish, and the connection keeps reading", async () => {
    const subject = `odd.${crypto.randomUUID()}`;
    const answers = ["not json", "null", '{"stream":"S"}', "[]"];
    let next = 0;
    const responder = nc.subscribe(subject, {
      callback: (_error, msg) => msg.respond(encoder.encode(answers[next++ % answers.length])),
    });
    const publisher = new JetStreamPublisher(nc);
    for (const answer of answers) {
      const error = await failureOf(publisher.publish(subject, encoder.encode("x"), msgIdHeader(answer), 5_000));
      expect(error.code, answer).toBe("JETSTREAM_INVALID_ACK");
    }
    responder.unsubscribe();
    // Had anything thrown out of the reply subscription's callback, nats.js would have stopped reading.
    const { subject: stored } = await stream();
    const ack = await publisher.publish(stored, encoder.encode("y"), msgIdHeader("after"), 5_000);
    expect(ack.seq).toBe(1);
    expect(publisher.pendingCount).toBe(0);
  });

  test("a closed connection fails a publish at once", async () => {
    const own = await connect({ servers: infra.nats.url });
    const publisher = new JetStreamPublisher(own);
    await own.close();
    const outcome = await publisher.publish("any.subject", encoder.encode("x"), msgIdHeader("c"), 5_000).then(
      () => undefined,
      (error: { code?: string }) => error,
    );
    expect(outcome?.code).toBe("CONNECTION_CLOSED");
    expect(publisher.pendingCount).toBe(0);
  });
});

describe("createPublisher over it", () => {
  test("stores the message id and trace context as headers, and retries a 503 until the stream exists", async () => {
    // A server of its own without the contract's streams: the first attempts find no stream (as during a leader
    // election), the streams are created meanwhile, and the same publish then lands once.
    const server = await startNats();
    const own = await connect({ servers: server.url });
    try {
      const publisher = createPublisher(own, { retryDeadlineMs: 20_000 });
      const taskId = crypto.randomUUID();
      const publishing = publisher.publish(
        Subjects.audit,
        { taskId, service: "test", action: "retried", at: new Date().toISOString() },
        { msgId: `${taskId}:audit:test` },
      );
      // The first attempt has reached the server (and found no stream) once its monitor counts a message in.
      await waitFor(
        "the first publish attempt",
        async () => {
          const varz = (await (await fetch(`http://127.0.0.1:${server.monitorPort}/varz`)).json()) as {
            in_msgs: number;
          };
          return varz.in_msgs >= 1;
        },
        { timeoutMs: 10_000 },
      );
      const jsm = await own.jetstreamManager();
      await provisionStreams(jsm);
      const ack = await publishing;
      expect(ack).toMatchObject({ stream: "EVENTS", seq: 1, duplicate: false });
      const stored = await jsm.streams.getMessage("EVENTS", { seq: 1 });
      expect(stored.header.get("Nats-Msg-Id")).toBe(`${taskId}:audit:test`);
      expect(stored.header.get("traceparent")).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
      const body = JSON.parse(new TextDecoder().decode(stored.data)) as { traceparent: string };
      expect(body.traceparent).toBe(stored.header.get("traceparent"));
    } finally {
      await own.close();
      await server.dispose();
    }
  });
});
