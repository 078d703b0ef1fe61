/**
 * The benchmark's raw contract flow (bench/src/systems/raw-flow.ts) really moves the messages it stands for: with a
 * real nats-server, every task completes, and the streams hold exactly FLOW_MESSAGES_PER_TASK per task by kind
 * (a stage whose publish were deduplicated away, or a missing event, would show here rather than as a rosy figure).
 * test/pipeline.int.test.ts checks that the pipeline sends the same numbers for an echo task.
 */
import { type NatsServer, startNats, waitFor } from "@tm/testkit";
import { connect } from "nats";
import { afterAll, beforeAll, expect, test } from "vitest";
import { closedLoop } from "../bench/src/load.js";
import type { SystemUnderTest } from "../bench/src/system.js";
import { FLOW_MESSAGES_PER_TASK, startRawFlow } from "../bench/src/systems/raw-flow.js";

let nats: NatsServer;
let flow: SystemUnderTest;

beforeAll(async () => {
  nats = await startNats();
  flow = await startRawFlow(nats, { taskTimeoutMs: 10_000 });
}, 60_000);
afterAll(async () => {
  await flow?.stop();
  await nats?.dispose();
});

test("every task completes, with 4 task-stream messages, 5 status and 5 audit events each", async () => {
  const tasks = 40;
  const run = await closedLoop(flow.runOne, { total: tasks, inFlight: 8 });
  expect(run.firstError).toBeUndefined();
  expect(run.completed).toBe(tasks);

  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await nc.jetstreamManager();
    const count = async (stream: string, subjects: string) => {
      const info = await jsm.streams.info(stream, { subjects_filter: subjects });
      return Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
    };
    // A task is done when its SUCCEEDED status is seen; result_stored is published a little later.
    const expected = FLOW_MESSAGES_PER_TASK;
    await waitFor("every result_stored audit event", async () => {
      return (await count("FLOW_EVENTS", "flow.events.audit")) >= tasks * expected.audit;
    });
    expect(await count("FLOW_TASKS", "flow.tasks.>")).toBe(tasks * expected.tasks);
    expect(await count("FLOW_EVENTS", "flow.events.status")).toBe(tasks * expected.status);
    expect(await count("FLOW_EVENTS", "flow.events.audit")).toBe(tasks * expected.audit);
  } finally {
    await nc.close();
  }
}, 60_000);
