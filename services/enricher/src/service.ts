/**
 * enricher: POST /enrich (task in, enrichment out) with /healthz, /readyz and /metrics on the same port.
 * Stateless: it needs neither NATS nor Redis, so it scales by replicas behind a plain HTTP load balancer.
 */
import { closeApp, defineService, HTTP_CLOSE_GRACE_MS, listen, port } from "@tm/kit";
import * as z from "zod";
import { buildApp } from "./app.js";

export const enricher = defineService({
  name: "enricher",
  opsPort: "api",
  needs: { nats: false, redis: false },
  config: {
    PORT: port.default(8081),
    ENRICHER_LATENCY_MS: z.coerce
      .number({ message: "must be a number" })
      .int({ message: "must be an integer" })
      .min(0, { message: "must be >= 0" })
      .default(0),
    ENRICHER_FAILURE_RATE: z.coerce
      .number({ message: "must be a number" })
      .min(0, { message: "must be between 0 and 1" })
      .max(1, { message: "must be between 0 and 1" })
      .default(0),
  },
  async start(rt) {
    const app = buildApp({
      latencyMs: rt.config.ENRICHER_LATENCY_MS,
      failureRate: rt.config.ENRICHER_FAILURE_RATE,
      logger: rt.log,
      meter: rt.meter,
    });
    rt.registerOps(app);
    rt.onStop("http server", () => closeApp(app, HTTP_CLOSE_GRACE_MS, rt.log));
    const boundPort = await listen(app, rt.config.PORT, "0.0.0.0", "enricher API");
    rt.log.info({ port: boundPort }, "enricher listening");
    return { app, port: boundPort };
  },
});
