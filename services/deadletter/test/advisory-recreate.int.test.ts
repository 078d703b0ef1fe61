/**
 * The ADVISORIES durable deleted (with its stream) while the listener runs, as when nats-server comes back without
 * its store: the listener notices within its check interval, creates both again, and the next crash on a last
 * delivery is still dead-lettered and its task failed.
 */
import { metrics } from "@opentelemetry/api";
import {
  ADVISORY_DURABLE,
  ADVISORY_STREAM,
  createPublisher,
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

const infra = useInfra();
const clients = useClients(infra);

test("a deleted ADVISORIES durable and stream are created again and advisories handled", async () => {
  const nc = clients.nc;
  const jsm = await nc.jetstreamManager();
  await provisionStreams(jsm);
  const publisher = createPublisher(nc);
  const listener = await listenForMaxDeliveries({
    name: "deadletter",
    nats: { nc, js: nc.jetstream(), jsm, publisher, onReconnect: () => undefined },
    publisher,
    log: createLogger("deadletter", "silent"),
    meter: metrics.getMeter("advisory-recreate-test"),
  });
  try {
    await jsm.streams.delete(ADVISORY_STREAM);
    await waitFor(
      "the ADVISORIES durable created again",
      async () => (await jsm.consumers.info(ADVISORY_STREAM, ADVISORY_DURABLE).catch(() => undefined)) !== undefined,
      { timeoutMs: 20_000 },
    );

    const { task, replicaPull } = await crashOnLastDelivery(nc);
    expect(await replicaPull).toBeNull();
    await waitFor(
      "the task FAILED by the listener",
      async () => {
        const last = await jsm.streams.getMessage(STREAMS.events, { last_by_subj: Subjects.status }).catch(() => null);
        const event = last?.json<StatusEvent>();
        return event?.taskId === task.taskId && event.state === "FAILED" && event.error === EXHAUSTED_ERROR;
      },
      { timeoutMs: 20_000 },
    );
  } finally {
    await listener.stop();
  }
});
