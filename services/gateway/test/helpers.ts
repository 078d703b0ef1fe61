import { type StatusEvent, StatusEventSchema, type StatusUpdate, statusEvent } from "@tm/flow";
import { startService } from "@tm/kit";
import type { Infra } from "@tm/testkit";
import { gateway } from "../src/service.js";

export type Gateway = Awaited<ReturnType<typeof startGateway>>;

/** A gateway in this process on free ports, against the file's infra. */
export async function startGateway(infra: Infra, env: Record<string, string> = {}) {
  const service = await startService(gateway, {
    NATS_URL: infra.nats.url,
    REDIS_URL: infra.redis.url,
    GRPC_PORT: "0",
    GATEWAY_WEB_PORT: "0",
    OPS_PORT: "0",
    LOG_LEVEL: "warn",
    ...env,
  });
  return { ...service, baseUrl: `http://127.0.0.1:${service.started.grpcPort}` };
}

/** A status event as the notifier would apply it. */
export function event(update: Omit<StatusUpdate, "source">): StatusEvent {
  return StatusEventSchema.parse(statusEvent({ ...update, source: "test-notifier" }));
}
