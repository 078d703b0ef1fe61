/**
 * tm_tasks_waiting{reason}: the tasks the gateways hold PENDING before queueing them, as BullMQ counts its delayed and
 * waiting-children jobs: `delayed` (tasks_delayed: a run_at not reached yet, or just due and about to be queued by a
 * releaser), `dependencies` (tasks_waiting: tasks whose depends_on have not all finished), `concurrency`
 * (tasks_concurrency_waiting: tasks waiting for a place under their concurrency key) and `fairness`
 * (tasks_fairness_waiting: tasks waiting for their key's turn in their type's fairness window). Read from Redis when
 * scraped (four O(1) commands), so it is never older than the scrape; while Redis is disconnected, or when a read fails
 * or takes over a second, the gauge is left out of that scrape. Every replica reads the same keys: dashboards take the max.
 */
import type { Meter } from "@opentelemetry/api";
import { withDeadline } from "@tm/kit";
import { Keys } from "@tm/store";
import type { Redis } from "ioredis";

/** The longest a scrape waits for the counts (Redis down: its commands queue until they fail). */
const READ_TIMEOUT_MS = 1_000;

export function exportWaitingGauge(meter: Meter, redis: Redis, onError: (error: unknown) => void): void {
  meter
    .createObservableGauge("tm_tasks_waiting", {
      description:
        "Tasks held PENDING before they are queued: reason = delayed (their run_at not reached yet), dependencies " +
        "(their depends_on not all finished), concurrency (waiting for a place under their concurrency key) or " +
        "fairness (waiting for their fairness key's turn in their type's window)",
    })
    .addCallback(async (result) => {
      // Disconnected: left out at once, rather than queueing commands (and holding the scrape) until Redis is back.
      if (redis.status !== "ready") return;
      try {
        const [delayed, dependencies, concurrency, fairness] = await withDeadline(
          Promise.all([
            redis.zcard(Keys.delayed),
            redis.hlen(Keys.waiting),
            redis.zcard(Keys.concurrencyWaitingAll),
            redis.zcard(Keys.fairnessWaitingAll),
          ]),
          READ_TIMEOUT_MS,
          () => new Error(`no answer from Redis in ${READ_TIMEOUT_MS} ms`),
        );
        result.observe(delayed, { reason: "delayed" });
        result.observe(dependencies, { reason: "dependencies" });
        result.observe(concurrency, { reason: "concurrency" });
        result.observe(fairness, { reason: "fairness" });
      } catch (error) {
        onError(error);
      }
    });
}
