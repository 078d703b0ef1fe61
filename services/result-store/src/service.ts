/**
 * result-store: tasks.results → Redis task_result:<id> (first write wins per generation, so a redelivered result is
 * never stored twice), and the HTTP API GET /results/:id with /healthz, /readyz and /metrics on the same port.
 */
import { publishAudit, Subjects } from "@tm/flow";
import { closeApp, defineService, HTTP_CLOSE_GRACE_MS, listen, port, positiveInt } from "@tm/kit";
import { storeResult } from "@tm/store";
import { buildApp } from "./app.js";

export const resultStore = defineService({
  name: "result-store",
  opsPort: "api",
  config: {
    PORT: port.default(8082),
    RESULT_STORE_CONCURRENCY: positiveInt.default(64),
  },
  async start(rt) {
    const results = rt.meter.createCounter("tm_results_total", {
      description: "Results consumed, by outcome: stored, duplicate (already stored) or skipped_cancelled",
    });
    await rt.consume(
      Subjects.results,
      async (result) => {
        // The cancel check, the first-write-wins check and the write in one Redis round trip.
        const outcome = await storeResult(rt.redis, result, rt.config.TASK_RETENTION_SECONDS);
        if (outcome === "cancelled") {
          await publishAudit(rt.publisher, { taskId: result.taskId, service: rt.name, action: "skipped_cancelled" });
          results.add(1, { type: result.type, outcome: "skipped_cancelled" });
          return;
        }
        if (outcome === "stored") {
          await publishAudit(rt.publisher, {
            taskId: result.taskId,
            service: rt.name,
            action: "result_stored",
            detail: { attempts: result.attempts, durationMs: result.durationMs },
            discriminator: result.generation,
          });
        }
        results.add(1, { type: result.type, priority: result.priority, outcome });
      },
      { concurrency: rt.config.RESULT_STORE_CONCURRENCY },
    );

    const app = buildApp({ redis: rt.redis, log: rt.log });
    rt.registerOps(app);
    rt.onStop("http server", () => closeApp(app, HTTP_CLOSE_GRACE_MS, rt.log));
    const httpPort = await listen(app, rt.config.PORT, "0.0.0.0", "result-store HTTP server");
    return { port: httpPort };
  },
});
