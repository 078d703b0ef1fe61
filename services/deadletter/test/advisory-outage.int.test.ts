/**
 * A stage crashes on a message's last delivery while no deadletter replica runs (restarting, say). nats-server's
 * MAX_DELIVERIES advisory is a core NATS message that nobody hears then; the ADVISORIES stream keeps it, so the
 * deadletter service, once started, still records the letter and fails the task instead of leaving it unfinished.
 */
import { ADVISORY_DURABLE, ADVISORY_STREAM, provisionStreams, STREAMS, type StatusEvent, Subjects } from "@tm/flow";
import { startService } from "@tm/kit";
import { readDeadLetters } from "@tm/store";
import { serviceEnv, useClients, useInfra, waitFor } from "@tm/testkit";
import { expect, test } from "vitest";
import { EXHAUSTED_ERROR } from "../src/advisory.js";
import { deadletter } from "../src/service.js";
import { CRASHING_DURABLE, crashOnLastDelivery } from "./crash-on-last-delivery.js";

const infra = useInfra();
const clients = useClients(infra);

test("an advisory emitted while the deadletter service is down is handled once it starts", async () => {
  const jsm = await clients.nc.jetstreamManager();
  // What any other service's start-up has done by then: the streams, ADVISORIES included.
  await provisionStreams(jsm);
  const { task, replicaPull, letterId } = await crashOnLastDelivery(clients.nc);
  expect(await replicaPull).toBeNull();
  await waitFor("the advisory kept in ADVISORIES", async () => {
    return (await jsm.streams.info(ADVISORY_STREAM)).state.messages === 1;
  });
  expect(await readDeadLetters(clients.redis, 0, 10)).toEqual([]);

  const service = await startService(deadletter, serviceEnv(infra, { LOG_LEVEL: "silent" }));
  try {
    await waitFor("the exhausted letter in dead_letter", async () =>
      (await readDeadLetters(clients.redis, 0, 10)).some((stored) => stored.taskId === task.taskId),
    );
    const [stored] = await readDeadLetters(clients.redis, 0, 10);
    expect(stored).toMatchObject({
      id: letterId,
      consumer: CRASHING_DURABLE,
      error: EXHAUSTED_ERROR,
      reason: "exhausted",
    });
    await waitFor("the FAILED status event", async () => {
      const last = await jsm.streams.getMessage(STREAMS.events, { last_by_subj: Subjects.status });
      const event = last.json<StatusEvent>();
      return event.taskId === task.taskId && event.state === "FAILED" && event.source === "deadletter";
    });
    // Handled and acknowledged: nothing left for a replica (or a restart) to handle again.
    await waitFor("the advisory acknowledged", async () => {
      const info = await jsm.consumers.info(ADVISORY_STREAM, ADVISORY_DURABLE);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    });
  } finally {
    await service.stop();
  }
});
