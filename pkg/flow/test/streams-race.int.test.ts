/**
 * Every service provisions the streams when it starts (pkg/kit connectNats), and the pipeline tests start all of them
 * at once on a fresh nats-server. This runs provisioning from many connections at the same moment, on fresh servers,
 * and checks that every one succeeds and the streams end up as configured. Two adds can race after both found no
 * stream: with the same settings the server answers the second with the existing stream; with other settings it
 * refuses it ("stream name already in use with a different configuration"), and provisionStreams then updates.
 *
 * The same for a service's durable consumer, which its replicas provision when they start together, with different
 * settings during a rolling upgrade that changes FlowSettings. nats-server 2.9 (Debian's) applies a create of an
 * existing consumer as an update; 2.10+ refuses it when the config differs (10148 "consumer already exists"), and
 * provisionConsumer then takes the existing-consumer path. The last test makes the 2.9 server answer as 2.10+ does.
 */
import { type NatsServer, startNats } from "@tm/testkit";
import { type ConsumerConfig, connect, type JetStreamManager, type NatsConnection, NatsError, nanos } from "nats";
import { afterEach, describe, expect, test } from "vitest";
import {
  allStreamConfigs,
  DEFAULT_FLOW_SETTINGS,
  durableName,
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

/**
 * Holds each manager's first look-up of each stream until every manager has its answer for that stream, so that all
 * of them find no stream and go on to create it: the race, every round, without relying on timing (left to timing,
 * a round now and then had every client but the first find the stream already there).
 */
function lookUpStreamsTogether(managers: JetStreamManager[]) {
  const barriers = new Map<string, { answered: number; all: Promise<void>; release: () => void }>();
  const barrierOf = (name: string) => {
    let barrier = barriers.get(name);
    if (!barrier) {
      let release!: () => void;
      const all = new Promise<void>((resolve) => {
        release = resolve;
      });
      barrier = { answered: 0, all, release };
      barriers.set(name, barrier);
    }
    return barrier;
  };
  for (const jsm of managers) {
    const info = jsm.streams.info.bind(jsm.streams);
    const seen = new Set<string>();
    jsm.streams.info = async (name, options) => {
      if (seen.has(name)) return info(name, options);
      seen.add(name);
      const answer = await info(name, options).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
      const barrier = barrierOf(name);
      if (++barrier.answered === managers.length) barrier.release();
      await barrier.all;
      if ("error" in answer) throw answer.error;
      return answer.value;
    };
  }
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
      lookUpStreamsTogether(managers);
      const results = await Promise.allSettled(managers.map((jsm) => provisionStreams(jsm)));
      expect(results.filter((r) => r.status === "rejected")).toEqual([]);
      for (const wanted of allStreamConfigs()) {
        const info = await managers[0]!.streams.info(wanted.name);
        expect(info.config.subjects.sort()).toEqual([...wanted.subjects].sort());
        expect(info.config.max_age).toBe(wanted.max_age);
        expect(info.config.max_msgs).toBe(wanted.max_msgs);
      }
      expect((await managers[0]!.streams.list().next()).map((info) => info.config.name).sort()).toEqual([
        "ADVISORIES",
        "EVENTS",
        "TASKS",
      ]);
    }
    // The race was really run: more than one client found no stream and created it (3 streams per round).
    expect(counts.adds).toBeGreaterThan(3 * ROUNDS);
  });

  test("different settings: all succeed, losers update; the streams end with one of the settings", async () => {
    const other: FlowSettings = { ...DEFAULT_FLOW_SETTINGS, maxAgeMs: 60 * 60 * 1_000 };
    const counts = { adds: 0, refused: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const managers = await freshServerAndClients(CLIENTS);
      for (const jsm of managers) countAdds(jsm, counts);
      lookUpStreamsTogether(managers);
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
});

describe("provisionConsumer from a service's replicas at once", () => {
  const durable = durableName("ingest", Subjects.ingest);
  /** A rolling upgrade's new settings: every editable consumer setting differs from the defaults. */
  const other: FlowSettings = { ...DEFAULT_FLOW_SETTINGS, ackWaitMs: 10_000, maxDeliver: 3, maxAckPending: 500 };
  const wanted = (s: FlowSettings) => ({
    ack_wait: nanos(s.ackWaitMs),
    max_deliver: s.maxDeliver,
    max_ack_pending: s.maxAckPending,
  });
  const editable = (c: Partial<ConsumerConfig>) => ({
    ack_wait: c.ack_wait,
    max_deliver: c.max_deliver,
    max_ack_pending: c.max_ack_pending,
  });

  /**
   * Holds each manager's first consumer look-up until all of them have their answer, so every replica finds no
   * consumer and goes on to create it: the lost race, every round, without relying on timing.
   */
  function lookUpTogether(managers: JetStreamManager[]) {
    let answered = 0;
    let releaseAll!: () => void;
    const allAnswered = new Promise<void>((resolve) => {
      releaseAll = resolve;
    });
    for (const jsm of managers) {
      const info = jsm.consumers.info.bind(jsm.consumers);
      let first = true;
      jsm.consumers.info = async (stream, name) => {
        if (!first) return info(stream, name);
        first = false;
        const answer = await info(stream, name).then(
          (value) => ({ value }),
          (error: unknown) => ({ error }),
        );
        if (++answered === managers.length) releaseAll();
        await allAnswered;
        if ("error" in answer) throw answer.error;
        return answer.value;
      };
    }
  }

  /** Counts the creates (not updates: nats.js updates through add with action "update") and the refused ones. */
  function countCreates(jsm: JetStreamManager, counts: { creates: number; refused: number }) {
    const add = jsm.consumers.add.bind(jsm.consumers) as AddWithAction;
    jsm.consumers.add = async (stream, config, action?: string) => {
      if (action === "update") return add(stream, config, action);
      counts.creates++;
      try {
        return await add(stream, config, action);
      } catch (error) {
        counts.refused++;
        throw error;
      }
    };
  }

  /**
   * Makes the managers' creates answered as nats-server 2.10+ answers them (nats.js sends action "create"): refused
   * with 10148 "consumer already exists" when the consumer exists with other settings. The creates run one at a time,
   * so that the look-up and the create of one do not interleave with another's.
   */
  function refuseCreatesOfExisting(managers: JetStreamManager[]) {
    let queue: Promise<unknown> = Promise.resolve();
    for (const jsm of managers) {
      const add = jsm.consumers.add.bind(jsm.consumers) as AddWithAction;
      const info = jsm.consumers.info.bind(jsm.consumers);
      jsm.consumers.add = (stream, config, action?: string) => {
        if (action === "update") return add(stream, config, action);
        const create = queue.then(async () => {
          const existing = await info(stream, config.durable_name!).catch(() => undefined);
          if (existing && JSON.stringify(editable(existing.config)) !== JSON.stringify(editable(config))) {
            // What nats.js throws on that answer (jsbaseclient_api parseJsResponse).
            const error = new NatsError("consumer already exists", "400");
            error.api_error = { code: 400, err_code: 10148, description: "consumer already exists" };
            throw error;
          }
          return add(stream, config, action);
        });
        queue = create.catch(() => undefined);
        return create;
      };
    }
  }

  /** One round's replicas on a fresh server with the streams in place, their creates counted and their look-ups held
   *  together (and, with `refuse`, their creates answered as by nats-server 2.10+). */
  async function raceRound(counts: { creates: number; refused: number }, refuse = false) {
    const managers = await freshServerAndClients(CLIENTS);
    await provisionStreams(managers[0]!);
    if (refuse) refuseCreatesOfExisting(managers);
    for (const jsm of managers) countCreates(jsm, counts);
    lookUpTogether(managers);
    return managers;
  }

  /** Provisions the durable from every manager at once; every call must succeed, leaving exactly that consumer. */
  async function provisionAll(managers: JetStreamManager[], settingsOf: (i: number) => FlowSettings) {
    const results = await Promise.allSettled(
      managers.map((jsm, i) => provisionConsumer(jsm, "ingest", Subjects.ingest, settingsOf(i))),
    );
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    expect(results.map((r) => r.status === "fulfilled" && r.value)).toEqual(managers.map(() => durable));
    const consumers = await managers[0]!.consumers.list(STREAMS.tasks).next();
    expect(consumers.map((c) => c.name)).toEqual([durable]);
    return editable(consumers[0]!.config);
  }

  test("same settings: all succeed, and exactly one consumer exists, with those settings", async () => {
    const counts = { creates: 0, refused: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const managers = await raceRound(counts);
      expect(await provisionAll(managers, () => DEFAULT_FLOW_SETTINGS)).toEqual(wanted(DEFAULT_FLOW_SETTINGS));
    }
    // The race was really run: every replica found no consumer and created it.
    expect(counts.creates).toBe(CLIENTS * ROUNDS);
  });

  test("different settings: all succeed, and the consumer has all its settings from one of the two", async () => {
    const counts = { creates: 0, refused: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const managers = await raceRound(counts);
      const settings = await provisionAll(managers, (i) => (i % 2 ? other : DEFAULT_FLOW_SETTINGS));
      expect([wanted(DEFAULT_FLOW_SETTINGS), wanted(other)]).toContainEqual(settings);
    }
    // How many creates the server refused depends on its version (none on 2.9, which applies them as updates).
    expect(counts.creates).toBe(CLIENTS * ROUNDS);
  });

  test("different settings, creates of an existing consumer refused as by nats-server 2.10+: all succeed", async () => {
    const counts = { creates: 0, refused: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const managers = await raceRound(counts, true);
      const settings = await provisionAll(managers, (i) => (i % 2 ? other : DEFAULT_FLOW_SETTINGS));
      expect([wanted(DEFAULT_FLOW_SETTINGS), wanted(other)]).toContainEqual(settings);
    }
    expect(counts.creates).toBe(CLIENTS * ROUNDS);
    // The first create of each round wins, and at least the next one with the other settings is refused.
    expect(counts.refused).toBeGreaterThanOrEqual(ROUNDS);
  });
});

/** nats.js's consumers.add, with the action argument its update passes ("update") but its types do not show. */
type AddWithAction = (
  stream: string,
  config: Partial<ConsumerConfig>,
  action?: string,
) => ReturnType<JetStreamManager["consumers"]["add"]>;
