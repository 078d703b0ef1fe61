import type { ConsumerInfo, StreamInfo } from "nats";
import { expect, test } from "vitest";
import { subjectMatches, unconsumedSubjects } from "../src/queue-stats.js";

test("a subject filter takes a subject token by token: * one token, > the rest (at least one)", () => {
  expect(subjectMatches("tasks.worker.high", "tasks.worker.high")).toBe(true);
  expect(subjectMatches("tasks.worker.high", "tasks.worker.high.gpu")).toBe(false);
  expect(subjectMatches("tasks.worker.*.gpu", "tasks.worker.low.gpu")).toBe(true);
  expect(subjectMatches("tasks.worker.*.gpu", "tasks.worker.low.cpu")).toBe(false);
  expect(subjectMatches("tasks.worker.*", "tasks.worker.low.gpu")).toBe(false);
  expect(subjectMatches("tasks.>", "tasks.worker.low.gpu")).toBe(true);
  expect(subjectMatches("tasks.>", "tasks")).toBe(false);
  expect(subjectMatches(">", "tasks.ingest")).toBe(true);
  expect(subjectMatches("tasks.ingest", "tasks")).toBe(false);
});

const stream = (name: string, subjects: Record<string, number>) =>
  ({ config: { name }, state: { subjects } }) as unknown as StreamInfo;
const consumer = (streamName: string, config: Partial<ConsumerInfo["config"]> & { filter_subjects?: string[] }) =>
  ({ stream_name: streamName, config }) as unknown as ConsumerInfo;

test("the unconsumed queues are the subjects holding messages that no consumer of their stream filters in", () => {
  const tasks = stream("TASKS", {
    "tasks.worker.medium": 40,
    "tasks.worker.medium.gpu": 3,
    "tasks.worker.high.gpu": 1,
    "tasks.worker.low.gpu": 0,
    "tasks.ingest": 9,
    "tasks.schedule": 5,
  });
  const consumers = [
    consumer("TASKS", { filter_subject: "tasks.worker.medium" }),
    consumer("TASKS", { filter_subject: "tasks.ingest" }),
    // nats-server 2.10's several filters
    consumer("TASKS", { filter_subjects: ["tasks.schedule", "tasks.results"] }),
    // Another stream's consumer of the same subject does not read this stream's messages.
    consumer("OTHER", { filter_subject: "tasks.worker.high.gpu" }),
  ];
  expect(unconsumedSubjects(consumers, [tasks]).map((q) => [q.subject, q.messages])).toEqual([
    ["tasks.worker.high.gpu", 1],
    ["tasks.worker.medium.gpu", 3],
  ]);
  // A consumer without a filter reads every subject; a wildcard filter those it matches.
  expect(unconsumedSubjects([consumer("TASKS", {})], [tasks])).toEqual([]);
  expect(
    unconsumedSubjects([...consumers, consumer("TASKS", { filter_subject: "tasks.worker.*.gpu" })], [tasks]),
  ).toEqual([]);
  // A stream read without its subjects has none to report.
  expect(unconsumedSubjects([], [stream("EVENTS", undefined as unknown as Record<string, number>)])).toEqual([]);
});
