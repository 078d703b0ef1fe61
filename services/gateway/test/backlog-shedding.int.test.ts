/**
 * Load shedding (src/backlog-shedding.ts): while a consumer's backlog is near what its stream's limits keep, new
 * submissions are refused with UNAVAILABLE naming it, before new messages would discard its oldest; once the backlog
 * is back under the threshold, they are taken again.
 */
import { create } from "@bufbuild/protobuf";
import { DurationSchema, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { STREAMS, Subjects } from "@tm/flow";
import { useInfra, waitFor } from "@tm/testkit";
import { AckPolicy, connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { closestBacklog, SHED_HYSTERESIS, shouldShed } from "../src/backlog-shedding.js";
import { useGateway } from "./helpers.js";

// Its own file: its streams keep 50 messages.
const infra = useInfra();
const g = useGateway(infra, { FLOW_STREAM_MAX_MSGS: "50", GATEWAY_SHED_CHECK_MS: "100" });
let nc: NatsConnection;
beforeAll(async () => {
  nc = await connect({ servers: infra.nats.url });
});
afterAll(async () => {
  await nc?.drain();
});

async function refusalOf(call: Promise<unknown>): Promise<ConnectError | undefined> {
  return call.then(
    () => undefined,
    (error: unknown) => ConnectError.from(error),
  );
}

async function metric(name: string): Promise<string | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${g.gateway.opsPort}/metrics`)).text();
  return text.split("\n").find((line) => line.startsWith(`${name} `) || line.startsWith(`${name}{`));
}

describe("a consumer whose backlog nears its stream's limits", () => {
  test("makes the gateway refuse new submissions with UNAVAILABLE naming it, until it catches up", async () => {
    // A consumer of tasks.ingest that reads nothing: each submission adds one message to its backlog.
    const jsm = await nc.jetstreamManager();
    await jsm.consumers.add(STREAMS.tasks, {
      durable_name: "held-ingest",
      filter_subject: Subjects.ingest,
      ack_policy: AckPolicy.Explicit,
    });
    // A delayed task, submitted before: waiting in Redis, it adds nothing to the stream until its time.
    const { taskId: delayed } = await g.client.submitTask({
      type: "echo",
      schedule: { case: "delay", value: create(DurationSchema, { seconds: 3_600n }) },
    });
    let accepted = 0;
    let refused: ConnectError | undefined;
    await waitFor(
      "a submission refused",
      async () => {
        refused = await refusalOf(g.client.submitTask({ type: "echo", payload: { n: accepted } }));
        if (!refused) accepted += 1;
        return refused !== undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(refused?.code).toBe(Code.Unavailable);
    expect(refused?.rawMessage).toMatch(
      /^the pipeline is shedding load: the backlog of consumer held-ingest is at \d+ % of stream TASKS's limits \(GATEWAY_SHED_BACKLOG_RATIO 0\.8\)/,
    );
    // Refused at 80 % of the 50 messages the stream keeps (one check later at most), before any was discarded.
    expect(accepted).toBeGreaterThanOrEqual(40);
    expect(accepted).toBeLessThan(50);
    expect((await jsm.consumers.info(STREAMS.tasks, "held-ingest")).num_pending).toBe(accepted);
    expect(await metric("tm_gateway_shedding")).toMatch(/ 1$/);
    // taskctl stats and the console show why (GetQueueStats).
    expect((await g.admin.getQueueStats({})).shedding).toMatch(
      /^the pipeline is shedding load: the backlog of consumer held-ingest /,
    );
    expect(await metric("tm_tasks_shed_total")).toMatch(/ [1-9]\d*$/);
    // Bad input is still told what is wrong first.
    expect((await refusalOf(g.client.submitTask({ type: "nope" })))?.code).toBe(Code.InvalidArgument);
    // A replay or a requeue adds a message per task as a submission does: refused alike (bad input told first).
    for (const call of [
      () => g.admin.replayDeadLetters({ ids: ["TASKS:1:1"] }),
      () => g.admin.requeueTasks({ taskIds: [crypto.randomUUID()] }),
      // Running a delayed task now would add its message too.
      () => g.client.promoteTask({ taskId: delayed }),
    ]) {
      const shed = await refusalOf(call());
      expect(shed?.code).toBe(Code.Unavailable);
      expect(shed?.rawMessage).toMatch(/^the pipeline is shedding load: the backlog of consumer held-ingest/);
    }
    expect((await refusalOf(g.admin.requeueTasks({ taskIds: ["nope"] })))?.code).toBe(Code.InvalidArgument);
    expect((await refusalOf(g.client.promoteTask({ taskId: crypto.randomUUID() })))?.code).toBe(Code.NotFound);

    // The consumer catches up: submissions are taken again.
    const held = await nc.jetstream().consumers.get(STREAMS.tasks, "held-ingest");
    await waitFor("the backlog acknowledged", async () => {
      for await (const message of await held.fetch({ max_messages: 100, expires: 1_000 })) message.ack();
      const info = await jsm.consumers.info(STREAMS.tasks, "held-ingest");
      return info.num_pending === 0 && info.num_ack_pending === 0;
    });
    await waitFor("a submission accepted again", async () => !(await refusalOf(g.client.submitTask({ type: "echo" }))));
    expect(await metric("tm_gateway_shedding")).toMatch(/ 0$/);
    expect((await g.admin.getQueueStats({})).shedding).toBe("");
    // The delayed task kept its time through the refusal (cancelled now: its release would add to the next tests'
    // stream).
    const { task } = await g.client.getTask({ taskId: delayed });
    expect(timestampDate(task!.runAt!).getTime()).toBeGreaterThan(Date.now() + 3_000_000);
    await g.client.cancelTask({ taskId: delayed, reason: "test done" });
    // Gone, with what it held, for the next test: purged first, so that no reading of the gateway's sees the
    // queue's messages without their consumer (an unread queue at 80 % of the stream, named by the next refusal).
    await jsm.streams.purge(STREAMS.tasks);
    await jsm.consumers.delete(STREAMS.tasks, "held-ingest");
  });
});

describe("a task queue no consumer reads", () => {
  test("counts as a backlog too, from its first message: refused while it fills its stream, taken once it is read", async () => {
    // A worker pool's queue none of whose workers started (TASK_ROUTES): its messages wait for the first consumer.
    const js = nc.jetstream();
    const subject = "tasks.worker.low.gpu";
    // The gateway reads the backlogs every 100 ms: start from a reading of the clean stream.
    await waitFor("the gateway not shedding", async () => (await g.admin.getQueueStats({})).shedding === "");
    for (let n = 0; n < 45; n++) await js.publish(subject, new TextEncoder().encode(JSON.stringify({ n })));
    let refused: ConnectError | undefined;
    await waitFor("a submission refused", async () => {
      refused = await refusalOf(g.client.submitTask({ type: "echo" }));
      return refused !== undefined;
    });
    expect(refused?.rawMessage).toMatch(
      /^the pipeline is shedding load: the backlog of queue tasks\.worker\.low\.gpu \(no consumer reads it\) is at \d+ % of stream TASKS's limits/,
    );
    // Its first consumer reads it all.
    const jsm = await nc.jetstreamManager();
    await jsm.consumers.add(STREAMS.tasks, {
      durable_name: "gpu",
      filter_subject: subject,
      ack_policy: AckPolicy.Explicit,
    });
    const gpu = await js.consumers.get(STREAMS.tasks, "gpu");
    await waitFor("the queue read", async () => {
      for await (const message of await gpu.fetch({ max_messages: 100, expires: 1_000 })) message.ack();
      const info = await jsm.consumers.info(STREAMS.tasks, "gpu");
      return info.num_pending === 0 && info.num_ack_pending === 0;
    });
    await waitFor("a submission accepted again", async () => !(await refusalOf(g.client.submitTask({ type: "echo" }))));
  });
});

describe("an EVENTS consumer far behind", () => {
  test("is not what sheds submissions: it loses status or audit records, not tasks", async () => {
    const jsm = await nc.jetstreamManager();
    const js = nc.jetstream();
    // An audit consumer that reads nothing, its backlog closer to the EVENTS limits than any TASKS one will be.
    await jsm.consumers.add(STREAMS.events, {
      durable_name: "held-audit",
      filter_subject: Subjects.audit,
      ack_policy: AckPolicy.Explicit,
    });
    for (let n = 0; n < 48; n++) await js.publish(Subjects.audit, new TextEncoder().encode(JSON.stringify({ n })));
    // Then a TASKS backlog: the refusal names it, not the audit consumer whose share is higher.
    await jsm.consumers.add(STREAMS.tasks, {
      durable_name: "held-ingest-again",
      filter_subject: Subjects.ingest,
      ack_policy: AckPolicy.Explicit,
    });
    let refused: ConnectError | undefined;
    await waitFor(
      "a submission refused",
      async () => {
        refused = await refusalOf(g.client.submitTask({ type: "echo" }));
        return refused !== undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(refused?.rawMessage).toMatch(/^the pipeline is shedding load: the backlog of consumer held-ingest-again /);
    await jsm.streams.purge(STREAMS.tasks);
    await jsm.consumers.delete(STREAMS.tasks, "held-ingest-again");
    await jsm.consumers.delete(STREAMS.events, "held-audit");
  });
});

describe("closestBacklog and shouldShed", () => {
  const stream = (name: string, lastSeq: number, maxMsgs: number) =>
    ({
      config: { name, max_msgs: maxMsgs, max_bytes: -1, max_age: 0 },
      state: { last_seq: lastSeq, messages: lastSeq, bytes: lastSeq * 100 },
    }) as never;
  const consumer = (streamName: string, name: string, ackFloor: number, pending: number) =>
    ({
      stream_name: streamName,
      name,
      ack_floor: { stream_seq: ackFloor },
      num_pending: pending,
      num_ack_pending: 0,
    }) as never;

  test("the consumer with the largest span from its oldest unacknowledged message to its stream's end wins", () => {
    const streams = [stream("TASKS", 1_000, 2_000), stream("EVENTS", 5_000, 10_000)];
    expect(
      closestBacklog([consumer("TASKS", "ingest", 900, 100), consumer("EVENTS", "audit", 1_000, 4_000)], streams),
    ).toEqual({ stream: "EVENTS", of: "consumer audit", ratio: 0.4 });
    // A queue no consumer reads, from its first message: 600 of the 2,000 TASKS keeps.
    const unread = [{ stream: "TASKS", subject: "tasks.worker.low.gpu", messages: 10, oldestAgeMs: 0, firstSeq: 401 }];
    expect(closestBacklog([consumer("TASKS", "ingest", 900, 100)], streams, unread)).toEqual({
      stream: "TASKS",
      of: "queue tasks.worker.low.gpu (no consumer reads it)",
      ratio: 0.3,
    });
    // Caught up: no backlog, whatever the span.
    expect(closestBacklog([consumer("TASKS", "ingest", 0, 0)], streams)?.ratio).toBe(0);
    expect(closestBacklog([], streams)).toBeUndefined();
  });

  test("sheds at the threshold and stops only under it by the hysteresis", () => {
    expect(shouldShed(0.79, 0.8, false)).toBe(false);
    expect(shouldShed(0.8, 0.8, false)).toBe(true);
    expect(shouldShed(0.8 - SHED_HYSTERESIS / 2, 0.8, true)).toBe(true);
    expect(shouldShed(0.8 - SHED_HYSTERESIS * 2, 0.8, true)).toBe(false);
  });
});
