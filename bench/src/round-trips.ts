/**
 * The cost of one round trip to each building block, measured on the same machine as the systems: it is the floor
 * under every latency the benchmark reports. Each call is timed twice over: back to back (the processes stay awake)
 * and after an idle gap (the processes and the machine's cores go to sleep between calls, as they do between the
 * hops of a task at a modest rate; on a VM, waking a sleeping vCPU costs a fraction of a millisecond per hop).
 */
import { performance } from "node:perf_hooks";
import type { NatsServer, RedisServer } from "@tm/testkit";
import { Redis } from "ioredis";
import { connect, StorageType } from "nats";
import { summarize } from "./stats.js";

export interface RoundTrip {
  name: string;
  samples: number;
  /** p50 ms of calls made back to back. */
  backToBackMs: number;
  /** p50 ms of calls made after `idleGapMs` of nothing. */
  afterIdleMs: number;
  idleGapMs: number;
}

export const IDLE_GAP_MS = 20;

/** Times `call` `samples` times back to back and `samples` times after an idle gap (after a short warm-up). */
export async function measureRoundTrip(
  name: string,
  call: () => Promise<unknown>,
  samples: number,
  idleGapMs = IDLE_GAP_MS,
): Promise<RoundTrip> {
  for (let i = 0; i < Math.min(20, samples); i++) await call();
  const timed = async (gapMs: number) => {
    const latencies: number[] = [];
    for (let i = 0; i < samples; i++) {
      if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
      const start = performance.now();
      await call();
      latencies.push(performance.now() - start);
    }
    return summarize(latencies).p50;
  };
  const backToBackMs = await timed(0);
  const afterIdleMs = await timed(idleGapMs);
  return { name, samples, backToBackMs, afterIdleMs, idleGapMs };
}

/** Redis PING, a core NATS round trip (flush) and a JetStream publish (stored, PubAck awaited), from this process. */
export async function infraRoundTrips(nats: NatsServer, redis: RedisServer, samples: number): Promise<RoundTrip[]> {
  const client = new Redis(redis.url, { lazyConnect: true });
  const nc = await connect({ servers: nats.url, noAsyncTraces: true, name: "bench-round-trips" });
  try {
    await client.connect();
    await (await nc.jetstreamManager()).streams.add({
      name: "ROUNDTRIP",
      subjects: ["bench.roundtrip"],
      storage: StorageType.File,
    });
    const js = nc.jetstream();
    const body = new TextEncoder().encode(JSON.stringify({ probe: "x".repeat(280) }));
    return [
      await measureRoundTrip("Redis PING", () => client.ping(), samples),
      await measureRoundTrip("NATS round trip (flush)", () => nc.flush(), samples),
      await measureRoundTrip("JetStream publish (PubAck)", () => js.publish("bench.roundtrip", body), samples),
    ];
  } finally {
    client.disconnect();
    await nc.close();
  }
}
