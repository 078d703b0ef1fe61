import type { StoredStatus } from "@tm/store";
import { describe, expect, test } from "vitest";
import { StatusFanout, StatusQueue, statusSequence } from "../src/status-subscriptions.js";

const TASK = "7f0c2a8e-3f55-4d61-9a57-3f2b1c1e9d10";
const CHANNEL = `task_status:${TASK}`;

function status(state: StoredStatus["state"], version: number): StoredStatus {
  return {
    taskId: TASK,
    state,
    progress: 0,
    attempt: 0,
    error: "",
    version,
    updatedAt: "",
    generation: 0,
    source: "t",
    progressReport: 0,
    progressMessage: "",
    progressDetails: "",
  };
}

function fakeTransport() {
  const calls: string[] = [];
  return {
    calls,
    subscribe: async (channel: string) => void calls.push(`SUBSCRIBE ${channel}`),
    unsubscribe: async (channel: string) => void calls.push(`UNSUBSCRIBE ${channel}`),
  };
}

describe("StatusFanout", () => {
  test("subscribes a channel once for many listeners and unsubscribes after the last one leaves", async () => {
    const transport = fakeTransport();
    const fanout = new StatusFanout(transport);
    const a = new StatusQueue();
    const b = new StatusQueue();
    await Promise.all([fanout.add(TASK, a), fanout.add(TASK, b)]);
    expect(transport.calls).toEqual([`SUBSCRIBE ${CHANNEL}`]);

    fanout.dispatch(CHANNEL, JSON.stringify(status("RUNNING", 5)));
    fanout.dispatch("task_status:other", JSON.stringify(status("RUNNING", 6)));
    fanout.dispatch(CHANNEL, "not json");
    const never = new AbortController().signal;
    expect((await a.next(never))?.version).toBe(5);
    expect((await b.next(never))?.version).toBe(5);

    fanout.remove(TASK, a);
    fanout.remove(TASK, a); // twice is harmless
    expect(transport.calls).toHaveLength(1);
    fanout.remove(TASK, b);
    expect(transport.calls).toEqual([`SUBSCRIBE ${CHANNEL}`, `UNSUBSCRIBE ${CHANNEL}`]);
    expect(fanout.channelCount).toBe(0);
  });

  test("a listener added while SUBSCRIBE is in flight waits for it", async () => {
    let confirm!: () => void;
    const fanout = new StatusFanout({
      subscribe: () => new Promise<void>((resolve) => (confirm = resolve)),
      unsubscribe: async () => undefined,
    });
    let secondReady = false;
    void fanout.add(TASK, new StatusQueue());
    const second = fanout.add(TASK, new StatusQueue()).then(() => (secondReady = true));
    await Promise.resolve();
    expect(secondReady).toBe(false);
    confirm();
    await second;
    expect(secondReady).toBe(true);
  });

  test("failAll fails every listener, after the updates they already received", async () => {
    const fanout = new StatusFanout(fakeTransport());
    const queue = new StatusQueue();
    await fanout.add(TASK, queue);
    fanout.dispatch(CHANNEL, JSON.stringify(status("RUNNING", 5)));
    fanout.failAll(new Error("connection lost"));
    const signal = new AbortController().signal;
    expect((await queue.next(signal))?.version).toBe(5);
    await expect(queue.next(signal)).rejects.toThrow("connection lost");
    await expect(queue.failed).rejects.toThrow("connection lost");
    expect(fanout.listenerCount).toBe(0);
  });
});

describe("StatusQueue", () => {
  test("next() returns undefined once the signal aborts", async () => {
    const queue = new StatusQueue();
    const controller = new AbortController();
    const pending = queue.next(controller.signal);
    controller.abort();
    expect(await pending).toBeUndefined();
  });
});

describe("statusSequence", () => {
  async function collect(current: StoredStatus, updates: StoredStatus[]) {
    const out: string[] = [];
    for await (const s of statusSequence(current, async () => updates.shift())) out.push(`${s.state}@${s.version}`);
    return out;
  }

  test("current first, then only strictly newer versions, ending after a terminal state", async () => {
    const out = await collect(status("PENDING", 10), [
      status("PENDING", 10),
      status("SCHEDULED", 30),
      status("INGESTED", 20),
      status("RUNNING", 40),
      status("SUCCEEDED", 50),
      status("RUNNING", 60),
    ]);
    expect(out).toEqual(["PENDING@10", "SCHEDULED@30", "RUNNING@40", "SUCCEEDED@50"]);
  });

  test("progress reports of one version are sent in their order, each once", async () => {
    const report = (version: number, progressReport: number) => ({ ...status("RUNNING", version), progressReport });
    const out: string[] = [];
    const updates = [
      report(40, 1),
      report(40, 2),
      report(40, 1),
      report(40, 2),
      report(50, 3),
      status("SUCCEEDED", 60),
    ];
    for await (const s of statusSequence(status("RUNNING", 40), async () => updates.shift()))
      out.push(`${s.state}@${s.version}.${s.progressReport}`);
    expect(out).toEqual(["RUNNING@40.0", "RUNNING@40.1", "RUNNING@40.2", "RUNNING@50.3", "SUCCEEDED@60.0"]);
  });

  test("a terminal current status ends the sequence at once", async () => {
    expect(await collect(status("CANCELLED", 70), [status("RUNNING", 80)])).toEqual(["CANCELLED@70"]);
  });
});
