import { useInfra, waitFor } from "@tm/testkit";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  Consumer,
  consumerConfig,
  createPublisher,
  DEFAULT_FLOW_SETTINGS,
  durableName,
  type FlowSettings,
  PermanentError,
  type Publisher,
  provisionConsumer,
  provisionStreams,
  RateLimitedError,
  RetryAfterError,
  Subjects,
  streamConfig,
} from "../src/index.js";

const infra = useInfra();
let nc: NatsConnection;
const settings: FlowSettings = { ...DEFAULT_FLOW_SETTINGS, ackWaitMs: 2_000, retryDelaysMs: [100, 200, 300, 400, 500] };

beforeAll(async () => {
  nc = await connect({ servers: infra.nats.url });
});
afterAll(async () => {
  await nc?.drain();
});

function task(overrides: Record<string, unknown> = {}) {
  return {
    taskId: crypto.randomUUID(),
    type: "echo",
    priority: "medium" as const,
    payload: { hello: "world" },
    createdAt: new Date().toISOString(),
    ...overrides,
  };
}

/** Resolves when `n` calls were seen, rejects after the deadline. */
function countdown(n: number, timeoutMs = 15_000) {
  let resolve!: () => void;
  const done = new Promise<void>((r, reject) => {
    resolve = r;
    setTimeout(() => reject(new Error(`only saw ${seen} of ${n} within ${timeoutMs} ms`)), timeoutMs).unref();
  });
  let seen = 0;
  return {
    done,
    tick() {
      seen++;
      if (seen >= n) resolve();
    },
    get seen() {
      return seen;
    },
  };
}

/** A new durable on tasks.ingest that sees only what the test publishes next: earlier tests left their messages on
 *  the subject, and a new durable would get them too. */
async function freshIngestDurable(service: string, flow: FlowSettings = settings) {
  const jsm = await nc.jetstreamManager();
  await provisionStreams(jsm, settings);
  await jsm.streams.purge("TASKS", { filter: Subjects.ingest });
  await provisionConsumer(jsm, service, Subjects.ingest, flow);
  return jsm;
}

/** Publishes `count` tasks on tasks.ingest at once; resolves with their ids once every PubAck is in. */
function publishIngest(publisher: Publisher, count: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const message = task();
      await publisher.publish(Subjects.ingest, message, { msgId: `${message.taskId}:ingest` });
      return message.taskId;
    }),
  );
}

describe("provisioning", () => {
  test("streams and consumers get exactly the contract's settings, and provisioning twice is harmless", async () => {
    const jsm = await nc.jetstreamManager();
    await provisionStreams(jsm);
    await provisionStreams(jsm);
    const tasks = await jsm.streams.info("TASKS");
    expect(tasks.config.subjects.sort()).toEqual(streamConfig("TASKS").subjects.sort());
    expect(tasks.config.max_age).toBe(24 * 3600 * 1e9);
    expect(tasks.config.max_msgs).toBe(1_000_000);
    expect(tasks.config.max_bytes).toBe(512 * 1024 * 1024);
    expect(tasks.config.duplicate_window).toBe(120 * 1e9);
    expect(tasks.config.storage).toBe("file");
    const events = await jsm.streams.info("EVENTS");
    expect(events.config.subjects.sort()).toEqual(["events.audit", "events.deadletter", "events.status"]);

    await provisionConsumer(jsm, "ingest", Subjects.ingest);
    await provisionConsumer(jsm, "ingest", Subjects.ingest);
    const info = await jsm.consumers.info("TASKS", "ingest-tasks-ingest");
    expect(info.config.ack_wait).toBe(30 * 1e9);
    expect(info.config.max_deliver).toBe(5);
    expect(info.config.filter_subject).toBe("tasks.ingest");
    expect(info.config.ack_policy).toBe("explicit");
    expect(info.config.backoff ?? []).toEqual([]);
    expect(consumerConfig("ingest", Subjects.ingest).durable_name).toBe("ingest-tasks-ingest");
  });
});

describe("consume", () => {
  test("a published message is consumed once and acked; a duplicate publish is dropped by the stream", async () => {
    const jsm = await nc.jetstreamManager();
    await provisionStreams(jsm, settings);
    await provisionConsumer(jsm, "t1", Subjects.ingest, settings);
    const publisher = createPublisher(nc);
    const message = task();
    const seen = countdown(1);
    const received: string[] = [];
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t1",
      subject: Subjects.ingest,
      settings,
      handler: async (m) => {
        received.push(m.taskId);
        seen.tick();
      },
    });
    await consumer.start();
    const first = await publisher.publish(Subjects.ingest, message, { msgId: `${message.taskId}:ingest` });
    const second = await publisher.publish(Subjects.ingest, message, { msgId: `${message.taskId}:ingest` });
    expect(first.duplicate).toBe(false);
    expect(second.duplicate).toBe(true);
    await seen.done;
    await consumer.stop();
    // The ack is sent as the handler returns; nats-server applies it asynchronously, so wait for it to land.
    await waitFor("the ack applied", async () => {
      const info = await jsm.consumers.info("TASKS", "t1-tasks-ingest");
      return info.num_ack_pending === 0 && info.num_pending === 0;
    });
    expect(received).toEqual([message.taskId]);
  });

  test("a failing handler's message comes back after the configured delay and stops after maxDeliver, then is dead-lettered", async () => {
    const jsm = await nc.jetstreamManager();
    await provisionStreams(jsm, settings);
    await provisionConsumer(jsm, "t2", Subjects.ingest, settings);
    await provisionConsumer(jsm, "t2", Subjects.deadletter, settings);
    const publisher = createPublisher(nc);
    const message = task();
    const attempts: Array<{ attempt: number; at: number }> = [];
    const exhausted = countdown(1);
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t2",
      subject: Subjects.ingest,
      settings,
      handler: async (m, ctx) => {
        if (m.taskId !== message.taskId) return;
        attempts.push({ attempt: ctx.attempt, at: Date.now() });
        throw new Error(`boom ${ctx.attempt}`);
      },
      hooks: { onExhausted: async () => exhausted.tick() },
    });
    const dead = countdown(1);
    const letters: unknown[] = [];
    const dlq = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t2",
      subject: Subjects.deadletter,
      settings,
      handler: async (m) => {
        if (m.taskId === message.taskId) {
          letters.push(m);
          dead.tick();
        }
      },
    });
    await consumer.start();
    await dlq.start();
    await publisher.publish(Subjects.ingest, message, { msgId: `${message.taskId}:ingest` });
    await exhausted.done;
    await dead.done;
    await consumer.stop();
    await dlq.stop();
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3, 4, 5]);
    for (let i = 1; i < attempts.length; i++) {
      const gap = (attempts[i]?.at ?? 0) - (attempts[i - 1]?.at ?? 0);
      const delay = settings.retryDelaysMs[i - 1] ?? 0;
      expect(gap).toBeGreaterThanOrEqual(delay - 20);
      expect(gap).toBeLessThan(delay + 1_500);
    }
    expect(letters[0]).toMatchObject({ reason: "exhausted", error: "boom 5", attempts: 5, subject: "tasks.ingest" });
  });

  test("a poison message is terminated at once and reported with the reason", async () => {
    const jsm = await nc.jetstreamManager();
    await provisionStreams(jsm, settings);
    await provisionConsumer(jsm, "t3", Subjects.ingest, settings);
    await provisionConsumer(jsm, "t3", Subjects.deadletter, settings);
    const publisher = createPublisher(nc);
    const poison = task({ payload: "nope" });
    const handled: string[] = [];
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t3",
      subject: Subjects.ingest,
      settings,
      handler: async (m) => {
        handled.push(m.taskId);
      },
    });
    const letters: Array<{ reason: string; error: string; raw?: string }> = [];
    const dead = countdown(2);
    const dlq = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t3",
      subject: Subjects.deadletter,
      settings,
      handler: async (m) => {
        if (m.consumer !== "t3-tasks-ingest") return;
        letters.push(m);
        dead.tick();
      },
    });
    await consumer.start();
    await dlq.start();
    const js = nc.jetstream();
    await js.publish(Subjects.ingest, new TextEncoder().encode("{not json"));
    await js.publish(Subjects.ingest, new TextEncoder().encode(JSON.stringify(poison)));
    await dead.done;
    await consumer.stop();
    await dlq.stop();
    expect(handled).not.toContain(poison.taskId);
    expect(letters.map((l) => l.reason)).toEqual(["invalid", "invalid"]);
    expect(letters[0]?.error).toMatch(/malformed JSON/);
    expect(letters[0]?.raw).toBe("{not json");
    expect(letters[1]?.error).toMatch(/payload: /);
    expect((letters[1] as { taskId?: string }).taskId).toBe(poison.taskId);
    await waitFor("the terminations applied", async () => {
      const info = await jsm.consumers.info("TASKS", "t3-tasks-ingest");
      return info.num_ack_pending === 0;
    });
    expect((await jsm.consumers.info("TASKS", "t3-tasks-ingest")).num_redelivered).toBe(0);
  });

  test("a PermanentError is not retried", async () => {
    const jsm = await nc.jetstreamManager();
    await provisionStreams(jsm, settings);
    await provisionConsumer(jsm, "t4", Subjects.ingest, settings);
    const publisher = createPublisher(nc);
    const message = task();
    const exhausted = countdown(1);
    let calls = 0;
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t4",
      subject: Subjects.ingest,
      settings,
      handler: async (m) => {
        if (m.taskId !== message.taskId) return;
        calls++;
        throw new PermanentError("unknown type");
      },
      hooks: { onExhausted: async () => exhausted.tick() },
    });
    await consumer.start();
    await publisher.publish(Subjects.ingest, message, { msgId: `${message.taskId}:ingest` });
    await exhausted.done;
    await consumer.stop();
    expect(calls).toBe(1);
  });

  /** A consumer whose handler fails the message's first attempt with `firstError`; what each delivery saw, and the
   *  retry delays its hooks were told. */
  async function failFirstAttempt(service: string, firstError: () => Error) {
    const jsm = await nc.jetstreamManager();
    await provisionStreams(jsm, settings);
    await provisionConsumer(jsm, service, Subjects.ingest, settings);
    const publisher = createPublisher(nc);
    const message = task();
    const attempts: Array<{ attempt: number; deferrals: number; at: number }> = [];
    const retries: number[] = [];
    const succeeded = countdown(1);
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service,
      subject: Subjects.ingest,
      settings,
      handler: async (m, ctx) => {
        if (m.taskId !== message.taskId) return;
        attempts.push({ attempt: ctx.attempt, deferrals: ctx.deferrals, at: Date.now() });
        if (ctx.attempt === 1) throw firstError();
        succeeded.tick();
      },
      hooks: { onRetry: async (_m, _error, _ctx, delayMs) => void retries.push(delayMs) },
    });
    await consumer.start();
    await publisher.publish(Subjects.ingest, message, { msgId: `${message.taskId}:ingest` });
    await succeeded.done;
    await consumer.stop();
    return { attempts, retries };
  }

  test("a RetryAfterError is retried after the delay it asks for, not the configured one, and spends an attempt", async () => {
    // The configured delay after attempt 1 is 100 ms.
    const { attempts, retries } = await failFirstAttempt(
      "t4r",
      () => new RetryAfterError("downstream said 429, Retry-After: 1.2 s", 1_200),
    );
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2]);
    expect(retries).toEqual([1_200]);
    expect((attempts[1]?.at ?? 0) - (attempts[0]?.at ?? 0)).toBeGreaterThanOrEqual(1_200 - 20);
  });

  test("a RateLimitedError where nothing takes the delivery back (a plain consume loop) is retried as a RetryAfterError", async () => {
    const { attempts, retries } = await failFirstAttempt("t4l", () => new RateLimitedError("429", 400));
    expect(attempts.map(({ attempt, deferrals }) => ({ attempt, deferrals }))).toEqual([
      { attempt: 1, deferrals: 0 },
      { attempt: 2, deferrals: 0 },
    ]);
    expect(retries).toEqual([400]);
  });

  test("a delivery past the message's own attempt limit (its last attempt was interrupted) is dead-lettered unrun", async () => {
    const jsm = await freshIngestDurable("t9");
    const publisher = createPublisher(nc);
    const message = task({ maxAttempts: 1 });
    await publisher.publish(Subjects.ingest, message, { msgId: `${message.taskId}:ingest` });
    // Its one attempt, interrupted: delivered and handed back unfinished (as a worker stopping mid-task does).
    const raw = await nc.jetstream().consumers.get("TASKS", durableName("t9", Subjects.ingest));
    const first = await raw.next({ expires: 5_000 });
    expect(first?.info.deliveryCount).toBe(1);
    first?.nak();

    const exhausted: Array<{ error: string; attempt: number; lastAttempt: boolean }> = [];
    const done = countdown(1);
    let calls = 0;
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t9",
      subject: Subjects.ingest,
      settings,
      attemptsOf: (m) => m.maxAttempts,
      handler: async () => {
        calls++;
      },
      hooks: {
        onExhausted: async (_m, error, ctx) => {
          exhausted.push({
            error: String((error as Error).message),
            attempt: ctx.attempt,
            lastAttempt: ctx.lastAttempt,
          });
          done.tick();
        },
      },
    });
    await consumer.start();
    await done.done;
    await consumer.stop();
    expect(calls).toBe(0);
    expect(exhausted).toEqual([
      {
        attempt: 2,
        lastAttempt: true,
        error:
          "attempt 2 is past the task's limit of 1 (max_attempts): attempt 1 was interrupted (its process stopped or " +
          "crashed), and the task is not run again",
      },
    ]);
    const letter = (await jsm.streams.getMessage("EVENTS", { last_by_subj: Subjects.deadletter })).json<{
      taskId: string;
      reason: string;
      attempts: number;
    }>();
    expect(letter).toMatchObject({ taskId: message.taskId, reason: "exhausted", attempts: 2 });
    const info = await jsm.consumers.info("TASKS", durableName("t9", Subjects.ingest));
    expect(info.num_ack_pending + info.num_pending).toBe(0);
  });

  test("deliveries handed back unstarted are not attempts; the server's last delivery is still the last", async () => {
    const flow: FlowSettings = { ...settings, maxDeliver: 3 };
    const jsm = await freshIngestDurable("t9h", flow);
    const publisher = createPublisher(nc);
    const once = task({ maxAttempts: 1 });
    const plain = task();
    const raw = await nc.jetstream().consumers.get("TASKS", durableName("t9h", Subjects.ingest));
    // `once` handed back unstarted once; `plain` twice, so its next delivery is the server's last (maxDeliver 3).
    const handedBack = new Map<string, number>([
      [once.taskId, 1],
      [plain.taskId, 2],
    ]);
    for (const message of [once, plain]) {
      await publisher.publish(Subjects.ingest, message, { msgId: `${message.taskId}:ingest` });
    }
    const left = new Map(handedBack);
    while ([...left.values()].some((n) => n > 0)) {
      const delivery = await raw.next({ expires: 5_000 });
      const taskId = delivery?.json<{ taskId: string }>().taskId ?? "";
      const remaining = (left.get(taskId) ?? 0) - 1;
      expect(remaining).toBeGreaterThanOrEqual(0);
      left.set(taskId, remaining);
      // The last hand-back of each comes back after this loop, not into it.
      delivery?.nak(remaining === 0 ? 1_000 : 0);
    }

    const seen = new Map<string, { attempt: number; lastAttempt: boolean }>();
    const done = countdown(2);
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t9h",
      subject: Subjects.ingest,
      settings: flow,
      attemptsOf: (m) => m.maxAttempts,
      attemptOf: async (m, deliveryCount) => deliveryCount - (handedBack.get(m.taskId) ?? 0),
      handler: async (m, ctx) => {
        seen.set(m.taskId, { attempt: ctx.attempt, lastAttempt: ctx.lastAttempt });
        done.tick();
        if (m.taskId === plain.taskId) throw new Error("fails on the server's last delivery");
      },
    });
    await consumer.start();
    await done.done;
    await waitFor("the failed one dead-lettered", async () => {
      const info = await jsm.consumers.info("TASKS", durableName("t9h", Subjects.ingest));
      return info.num_ack_pending + info.num_pending === 0;
    });
    await consumer.stop();
    // `once` runs: its one attempt, not "attempt 2 … interrupted".
    expect(seen.get(once.taskId)).toEqual({ attempt: 1, lastAttempt: true });
    // `plain` is on attempt 1 of 3 but delivery 3 of 3: a failure dead-letters it now, counting the one attempt.
    expect(seen.get(plain.taskId)).toEqual({ attempt: 1, lastAttempt: true });
    const letter = (await jsm.streams.getMessage("EVENTS", { last_by_subj: Subjects.deadletter })).json<{
      taskId: string;
      reason: string;
      attempts: number;
    }>();
    expect(letter).toMatchObject({ taskId: plain.taskId, reason: "exhausted", attempts: 1 });
  });

  test("with a hand-back allowance, a task handed back more often than it has attempts still runs them all", async () => {
    // Three attempts, three deliveries for hand-backs: the server's MaxDeliver is 6.
    const flow: FlowSettings = { ...settings, maxDeliver: 3, handBackDeliveries: 3 };
    const jsm = await freshIngestDurable("t9a", flow);
    expect((await jsm.consumers.info("TASKS", durableName("t9a", Subjects.ingest))).config.max_deliver).toBe(6);
    const publisher = createPublisher(nc);
    const message = task();
    await publisher.publish(Subjects.ingest, message, { msgId: `${message.taskId}:ingest` });
    // Handed back three times: as many as its attempts, which without the allowance would have been the server's
    // last delivery (a failure then dead-letters it, a fourth hand-back loses it to MaxDeliver).
    const raw = await nc.jetstream().consumers.get("TASKS", durableName("t9a", Subjects.ingest));
    for (let handBack = 1; handBack <= 3; handBack++) {
      const delivery = await raw.next({ expires: 5_000 });
      expect(delivery?.json<{ taskId: string }>().taskId).toBe(message.taskId);
      delivery?.nak(handBack === 3 ? 1_000 : 0); // the last comes back after this loop
    }

    const runs: Array<{ attempt: number; lastAttempt: boolean }> = [];
    const done = countdown(3);
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t9a",
      subject: Subjects.ingest,
      settings: flow,
      attemptOf: async (_m, deliveryCount) => deliveryCount - 3,
      handler: async (_m, ctx) => {
        runs.push({ attempt: ctx.attempt, lastAttempt: ctx.lastAttempt });
        done.tick();
        if (runs.length < 3) throw new Error(`attempt ${ctx.attempt} fails`);
      },
    });
    await consumer.start();
    await done.done;
    await waitFor("the third attempt acked", async () => {
      const info = await jsm.consumers.info("TASKS", durableName("t9a", Subjects.ingest));
      return info.num_ack_pending + info.num_pending === 0;
    });
    await consumer.stop();
    // Deliveries 4, 5 and 6 are attempts 1, 2 and 3; only the third is the last.
    expect(runs).toEqual([
      { attempt: 1, lastAttempt: false },
      { attempt: 2, lastAttempt: false },
      { attempt: 3, lastAttempt: true },
    ]);
  });

  test("a stream deleted under a running consumer (its durable with it): recreate is called and consumption resumes", async () => {
    const jsm = await freshIngestDurable("t9r");
    const publisher = createPublisher(nc);
    const handled: string[] = [];
    let recreated = 0;
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t9r",
      subject: Subjects.ingest,
      settings,
      recreate: async () => {
        recreated++;
        await provisionStreams(jsm, settings);
        await provisionConsumer(jsm, "t9r", Subjects.ingest, settings);
      },
      handler: async (m) => {
        handled.push(m.taskId);
      },
    });
    await consumer.start();
    try {
      // What a nats-server back without its store looks like, or an operator's delete. The pull open at that moment
      // comes back empty (nats.js raises nothing), so the consumer checks the durable and finds it gone; a pull
      // issued after it fails "stream not found" instead. Either way both are created again.
      await jsm.streams.delete("TASKS");
      await waitFor("the stream and durable created again", () => recreated >= 1, { timeoutMs: 25_000 });
      const [message] = await publishIngest(publisher, 1);
      await waitFor("a message after they came back", () => handled.includes(message!), { timeoutMs: 25_000 });
    } finally {
      await consumer.stop();
    }
  });

  test("a backlog longer than AckWait is not delivered twice: only what can start is pulled", async () => {
    const quick: FlowSettings = { ...settings, ackWaitMs: 1_000 };
    const jsm = await nc.jetstreamManager();
    await provisionStreams(jsm, quick);
    await provisionConsumer(jsm, "t5", Subjects.schedule, quick);
    const publisher = createPublisher(nc);
    const ids = Array.from({ length: 6 }, () => crypto.randomUUID());
    const seen: string[] = [];
    const all = countdown(ids.length, 20_000);
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t5",
      subject: Subjects.schedule,
      settings: quick,
      concurrency: 1,
      handler: async (m) => {
        seen.push(m.taskId);
        if (seen.length === 1) await gate; // hold the only slot well past AckWait of the waiting messages
        all.tick();
      },
    });
    const now = new Date().toISOString();
    for (const taskId of ids) {
      await publisher.publish(
        Subjects.schedule,
        {
          ...task({ taskId }),
          enrichment: {
            payloadBytes: 1,
            payloadSha256: "0".repeat(64),
            fieldCount: 1,
            receivedAt: now,
            enrichedAt: now,
          },
        },
        { msgId: `${taskId}:schedule` },
      );
    }
    await consumer.start();
    // Real time must pass here: the property under test is what happens after AckWait (1 s) elapses.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    release();
    await all.done;
    await consumer.stop();
    expect(seen.sort()).toEqual([...ids].sort());
    const info = await jsm.consumers.info("TASKS", "t5-tasks-schedule");
    expect(info.num_redelivered).toBe(0);
  });

  test("a pull waits until half the slots are free: none asks for fewer than half the concurrency", async () => {
    const jsm = await nc.jetstreamManager();
    await provisionStreams(jsm, settings);
    await provisionConsumer(jsm, "t6", Subjects.schedule, settings);
    // Pull requests are ordinary messages on the consumer's API subject: a plain subscription sees each one's size.
    const pulls: number[] = [];
    const requests = nc.subscribe("$JS.API.CONSUMER.MSG.NEXT.TASKS.t6-tasks-schedule", {
      callback: (_error, request) => pulls.push(request.json<{ batch: number }>().batch),
    });
    await nc.flush();
    const publisher = createPublisher(nc);
    const count = 48;
    const all = countdown(count);
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t6",
      subject: Subjects.schedule,
      settings,
      concurrency: 8,
      // Handlers end one at a time, at different moments: a pull per freed slot would ask for one message.
      handler: async () => {
        await new Promise((resolve) => setTimeout(resolve, 1 + Math.floor(Math.random() * 8)));
        all.tick();
      },
    });
    const now = new Date().toISOString();
    const enrichment = {
      payloadBytes: 1,
      payloadSha256: "0".repeat(64),
      fieldCount: 1,
      receivedAt: now,
      enrichedAt: now,
    };
    await Promise.all(
      Array.from({ length: count }, () => {
        const taskId = crypto.randomUUID();
        return publisher.publish(
          Subjects.schedule,
          { ...task({ taskId }), enrichment },
          { msgId: `${taskId}:schedule` },
        );
      }),
    );
    await consumer.start();
    await all.done;
    await consumer.stop();
    requests.unsubscribe();
    expect(pulls.length).toBeGreaterThan(1);
    expect(pulls.filter((batch) => batch < 4)).toEqual([]);
  });

  test("with gatherMs, deliveries that arrive together start together once the window closes, and are acked", async () => {
    const jsm = await freshIngestDurable("t7");
    const publisher = createPublisher(nc);
    // Long enough that the five publishes land inside one window even on a busy machine, and under the cap of a
    // third of this file's 2 s AckWait.
    const gatherMs = 600;
    const count = 5;
    const all = countdown(count);
    const starts: Array<{ at: number; inFirstTurn: boolean }> = [];
    let firstTurnOver: boolean | undefined;
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t7",
      subject: Subjects.ingest,
      settings,
      gatherMs,
      handler: async () => {
        // The first handler marks the end of its event-loop turn: the others started in the same dispatch if the
        // mark has not run yet when they start.
        if (firstTurnOver === undefined) {
          firstTurnOver = false;
          setImmediate(() => {
            firstTurnOver = true;
          });
        }
        starts.push({ at: performance.now(), inFirstTurn: firstTurnOver === false });
        all.tick();
      },
    });
    await consumer.start();
    const publishedAt = performance.now();
    await publishIngest(publisher, count);
    await all.done;
    await consumer.stop();
    expect(starts.map((s) => s.inFirstTurn)).toEqual(Array(count).fill(true));
    // Held for the window (timers never fire early; 5 ms for the clock's rounding).
    expect(Math.min(...starts.map((s) => s.at)) - publishedAt).toBeGreaterThanOrEqual(gatherMs - 5);
    await waitFor("the acks applied", async () => {
      const info = await jsm.consumers.info("TASKS", "t7-tasks-ingest");
      return info.num_ack_pending === 0 && info.num_pending === 0;
    });
  });

  test("with gatherMs, a delivery still waiting for its window when the consumer stops is handled and acked, not lost", async () => {
    // An AckWait long enough that the window is not capped (a third of AckWait) below what the test measures.
    const longAckWait = { ...settings, ackWaitMs: 300_000 };
    const jsm = await freshIngestDurable("t8", longAckWait);
    const publisher = createPublisher(nc);
    const handled: string[] = [];
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t8",
      subject: Subjects.ingest,
      settings: longAckWait,
      gatherMs: 10_000,
      handler: async (m) => {
        handled.push(m.taskId);
      },
    });
    await consumer.start();
    const [taskId] = await publishIngest(publisher, 1);
    // Taken (its slot is held) but not started: it waits for the window, which stop() does not wait out.
    await waitFor("the delivery gathered", () => consumer.inFlight === 1 && handled.length === 0);
    const stopping = performance.now();
    await consumer.stop(5_000);
    expect(handled).toEqual([taskId]);
    expect(performance.now() - stopping).toBeLessThan(2_000);
    await waitFor("the ack applied", async () => {
      const info = await jsm.consumers.info("TASKS", "t8-tasks-ingest");
      return info.num_ack_pending === 0 && info.num_pending === 0 && info.num_redelivered === 0;
    });
  });

  test("with gatherMs, a full batch (half the slots) starts without waiting out the window", async () => {
    const longAckWait = { ...settings, ackWaitMs: 300_000 };
    await freshIngestDurable("t9", longAckWait);
    const publisher = createPublisher(nc);
    const all = countdown(4, 10_000);
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t9",
      subject: Subjects.ingest,
      settings: longAckWait,
      concurrency: 4,
      // A window no test would wait out: the countdown's 10 s deadline fails the test unless batches of 2 start early.
      gatherMs: 60_000,
      handler: async () => all.tick(),
    });
    await consumer.start();
    await publishIngest(publisher, 4);
    await all.done;
    await consumer.stop();
  });

  test("with gatherMs, the window is capped at a third of AckWait: gathered deliveries have no heartbeat yet", async () => {
    const jsm = await freshIngestDurable("t10");
    const publisher = createPublisher(nc);
    // AckWait is 2 s here: the 60 s window becomes ~667 ms, well within the countdown's 5 s.
    const one = countdown(1, 5_000);
    const consumer = new Consumer({
      js: nc.jetstream(),
      publisher,
      service: "t10",
      subject: Subjects.ingest,
      settings,
      gatherMs: 60_000,
      handler: async () => one.tick(),
    });
    await consumer.start();
    await publishIngest(publisher, 1);
    await one.done;
    await consumer.stop();
    const info = await jsm.consumers.info("TASKS", "t10-tasks-ingest");
    expect(info.num_redelivered).toBe(0);
  });
});
