/**
 * Every service provisions the streams when it starts (pkg/kit connectNats), and the pipeline tests start all of them
 * at once on a fresh nats-server. This runs provisioning from many connections at the same moment, on fresh servers,
 * and checks that every one succeeds and the streams end up as configured. Two adds can race after both found no
 * stream: with the same settings the server answers the second with the existing stream; with other settings it
 * refuses it ("stream name already in use with a different configuration"), and provisionStreams then updates.
 */
import { type NatsServer, startNats } from "@tm/testkit";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { afterEach, describe, expect, test } from "vitest";
import {
  DEFAULT_FLOW_SETTINGS,
  type FlowSettings,
  provisionConsumer,
  provisionStreams,
  STREAMS,
  Subjects,
  streamConfig,
} from "../src/index.js";

const CLIENTS = 8;
const ROUNDS = 3;

let server: NatsServer | undefined;
let connections: NatsConnection[] = [];
afterEach(async () => {
  await Promise.all(connections.map((nc) => nc.close()));
  connections = [];
  await server?.dispose();
  server = undefined;
});

/** A fresh server and `n` connections to it, each with its JetStream manager, like `n` services starting. */
async function freshServerAndClients(n: number): Promise<JetStreamManager[]> {
  await Promise.all(connections.map((nc) => nc.close()));
  await server?.dispose();
  server = await startNats();
  connections = await Promise.all(Array.from({ length: n }, () => connect({ servers: server!.url })));
  return Promise.all(connections.map((nc) => nc.jetstreamManager()));
}

/** Counts the stream creations each manager attempted and the ones the server refused. */
function countAdds(jsm: JetStreamManager, counts: { adds: number; refused: number }) {
  const add = jsm.streams.add.bind(jsm.streams);
  jsm.streams.add = async (config) => {
    counts.adds++;
    try {
      return await add(config);
    } catch (error) {
      counts.refused++;
      throw error;
    }
  };
}

describe("provisionStreams from many services at once", () => {
  test("same settings: all succeed, and the streams are as configured", async () => {
    const counts = { adds: 0, refused: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const managers = await freshServerAndClients(CLIENTS);
      for (const jsm of managers) countAdds(jsm, counts);
      const results = await Promise.allSettled(managers.map((jsm) => provisionStreams(jsm)));
      expect(results.filter((r) => r.status === "rejected")).toEqual([]);
      for (const name of Object.values(STREAMS)) {
        const info = await managers[0]!.streams.info(name);
        expect(info.config.subjects.sort()).toEqual(streamConfig(name).subjects.sort());
        expect(info.config.max_age).toBe(streamConfig(name).max_age);
      }
      expect((await managers[0]!.streams.list().next()).length).toBe(2);
    }
    // The race was really run: more than one client found no stream and created it (2 streams per round).
    expect(counts.adds).toBeGreaterThan(2 * ROUNDS);
  });

  test("different settings: all succeed, losers update; the streams end with one of the settings", async () => {
    const other: FlowSettings = { ...DEFAULT_FLOW_SETTINGS, maxAgeMs: 60 * 60 * 1_000 };
    const counts = { adds: 0, refused: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const managers = await freshServerAndClients(CLIENTS);
      for (const jsm of managers) countAdds(jsm, counts);
      const results = await Promise.allSettled(
        managers.map((jsm, i) => provisionStreams(jsm, i % 2 ? other : DEFAULT_FLOW_SETTINGS)),
      );
      expect(results.filter((r) => r.status === "rejected")).toEqual([]);
      for (const name of Object.values(STREAMS)) {
        const info = await managers[0]!.streams.info(name);
        expect([streamConfig(name).max_age, streamConfig(name, other).max_age]).toContain(info.config.max_age);
      }
    }
    expect(counts.refused).toBeGreaterThan(0);
  });

  test("a service's replicas provisioning their durable consumer at once all succeed", async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const managers = await freshServerAndClients(CLIENTS);
      await Promise.all(managers.map((jsm) => provisionStreams(jsm)));
      const results = await Promise.allSettled(
        managers.map((jsm) => provisionConsumer(jsm, "ingest", Subjects.ingest)),
      );
      expect(results.filter((r) => r.status === "rejected")).toEqual([]);
      expect((await managers[0]!.consumers.info(STREAMS.tasks, "ingest-tasks-ingest")).config.ack_wait).toBe(
        DEFAULT_FLOW_SETTINGS.ackWaitMs * 1e6,
      );
    }
  });
});
