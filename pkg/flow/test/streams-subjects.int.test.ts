/**
 * provisionStreams on a stream that exists: it adds the subjects this version has (the worker pools'
 * tasks.worker.*.*, to a TASKS stream an earlier version made) and keeps the ones it does not know (a later
 * version's, during a rolling upgrade in either direction), so no service takes a subject out from under another.
 */
import { type NatsServer, startNats } from "@tm/testkit";
import { connect, type NatsConnection } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { keepingSubjects, provisionStreams, STREAMS, streamConfig, TASK_SUBJECTS } from "../src/index.js";

let server: NatsServer;
let nc: NatsConnection;
beforeAll(async () => {
  server = await startNats();
  nc = await connect({ servers: server.url });
});
afterAll(async () => {
  await nc?.close();
  await server?.dispose();
});

test("an earlier version's TASKS stream gains the pools' subjects, and a subject this version does not know stays", async () => {
  const jsm = await nc.jetstreamManager();
  // As an earlier version made it (the contract's subjects only), and with a later version's subject added.
  await jsm.streams.add({ ...streamConfig(STREAMS.tasks), subjects: [...TASK_SUBJECTS, "tasks.later"] });
  await provisionStreams(jsm);
  const subjects = (await jsm.streams.info(STREAMS.tasks)).config.subjects;
  expect([...subjects].sort()).toEqual([...TASK_SUBJECTS, "tasks.worker.*.*", "tasks.later"].sort());
  // A message on a pool's subject is stored, and one on the later version's still is.
  expect((await nc.jetstream().publish("tasks.worker.high.gpu", "{}")).stream).toBe(STREAMS.tasks);
  expect((await nc.jetstream().publish("tasks.later", "{}")).stream).toBe(STREAMS.tasks);
  // Provisioning again changes nothing (no update: the kept subject is not a difference).
  await provisionStreams(jsm);
  expect((await jsm.streams.info(STREAMS.tasks)).config.subjects.sort()).toEqual([...subjects].sort());
});

test("keepingSubjects adds only what the current stream has beside the wanted subjects", () => {
  const wanted = streamConfig(STREAMS.events);
  expect(keepingSubjects(wanted, undefined)).toBe(wanted);
  expect(keepingSubjects(wanted, wanted)).toBe(wanted);
  expect(keepingSubjects(wanted, { ...wanted, subjects: ["events.later"] }).subjects).toEqual([
    ...wanted.subjects,
    "events.later",
  ]);
});
