/**
 * Authentication and per-caller rate limiting, applied by wrapping a service's handler object, so registering a
 * protected service stays one line: `addService(server, S, guard.protect(S, handlers))`. A stream is admitted
 * (and counted) once, when it opens. grpc.health.v1 is not wrapped: probes carry no credentials.
 *
 * A service protected `{ admin: true }` (the AdminService) is open only to the callers admin-access.ts allows: others
 * are refused with PERMISSION_DENIED before the rate limit is asked.
 *
 * With GATEWAY_AUTH_MODE=none there is no caller to limit by, so nothing is checked and nothing is limited.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { Code, ConnectError } from "@connectrpc/connect";
import { LogThrottle, type Runtime } from "@tm/kit";
import { type CallContext, retryPushback, type ServiceHandlers } from "@tm/proto";
import type { RedisCall } from "../redis-call.js";
import { adminAccess } from "./admin-access.js";
import { type Authenticator, AuthFailure, createAuthenticator, type Identity } from "./authenticator.js";
import { attachCaller } from "./caller.js";
import type { AuthConfig } from "./config.js";
import { RateLimiter } from "./rate-limiter.js";

/** At most one warning per this interval for rate-limit bypasses, and one for refused AdminService calls. */
const WARNING_INTERVAL_MS = 10_000;

type AnyHandler = (request: unknown, ctx: CallContext) => unknown;

export interface ProtectOptions {
  /** Only for admin callers (GATEWAY_ADMIN_CALLERS, GATEWAY_JWT_ADMIN_SCOPE). */
  admin?: boolean;
  /** What a unary call of a method costs against the rate limit, by its request (default 1): a batch counts its
   *  tasks, so that batching is no way around the limit. */
  costs?: Record<string, (request: never) => number>;
}

export interface Guard {
  protect<S extends GenServiceMethods>(
    service: GenService<S>,
    handlers: ServiceHandlers<S>,
    options?: ProtectOptions,
  ): ServiceHandlers<S>;
}

/** `redisCall` bounds the rate limiter's Redis call (redis-call.ts): when it fails the limit fails open. */
export async function createGuard(rt: Runtime<Runtime["config"] & AuthConfig>, redisCall: RedisCall): Promise<Guard> {
  const { config, log } = rt;
  const configured = await createAuthenticator(config, log);
  if (!configured) {
    log.warn("GATEWAY_AUTH_MODE=none: every call is accepted without credentials (local development only)");
    if (config.GATEWAY_ADMIN_CALLERS || config.GATEWAY_JWT_ADMIN_SCOPE) {
      log.warn("GATEWAY_ADMIN_CALLERS / GATEWAY_JWT_ADMIN_SCOPE have no effect with GATEWAY_AUTH_MODE=none");
    }
    return { protect: (_service, handlers) => handlers };
  }
  const authenticator: Authenticator = configured;
  const admins = adminAccess(config);
  if (!admins.configured) {
    log.warn(
      "no admin callers (GATEWAY_ADMIN_CALLERS unset): the AdminService (taskctl stats, ls, history, dlq, requeue; the " +
        "console's lists) refuses every caller",
    );
  }
  const limiter =
    config.GATEWAY_RATE_LIMIT_PER_SEC > 0
      ? new RateLimiter(rt.redis, {
          perSecond: config.GATEWAY_RATE_LIMIT_PER_SEC,
          burst: config.GATEWAY_RATE_LIMIT_BURST,
        })
      : undefined;
  const authFailures = rt.meter.createCounter("tm_auth_failures_total", {
    description:
      "Calls refused with UNAUTHENTICATED, by reason (missing, malformed, invalid), or with PERMISSION_DENIED (forbidden: an AdminService call by a caller that is not an admin)",
  });
  const rateLimited = rt.meter.createCounter("tm_rate_limited_total", {
    description: "Calls refused with RESOURCE_EXHAUSTED by the per-caller rate limit",
  });
  const bypassed = rt.meter.createCounter("tm_rate_limit_bypassed_total", {
    description: "Calls let through without a rate-limit check because Redis could not be asked (fail-open)",
  });
  const bypassWarnings = new LogThrottle(WARNING_INTERVAL_MS);
  const forbiddenWarnings = new LogThrottle(WARNING_INTERVAL_MS);

  /** api-key callers are a configured, bounded set; JWT subjects are not, so they share one label value. */
  const callerLabel = (caller: string) => (authenticator.mode === "api-key" ? caller : "jwt");

  async function withinLimit(caller: string, cost: number): Promise<void> {
    if (!limiter) return;
    if (limiter.exceedsBurst(cost)) {
      // Waiting would never help: say what would.
      throw new ConnectError(
        `tasks: a batch of ${cost} tasks is more than the rate limit allows at once (a burst of ` +
          `${limiter.limit.burst}, GATEWAY_RATE_LIMIT_BURST): send at most ${limiter.limit.burst} per call`,
        Code.InvalidArgument,
      );
    }
    let decision: Awaited<ReturnType<RateLimiter["take"]>>;
    try {
      // Lost or stalled, Redis would hold every call here: fail open at once, or after the Redis timeout.
      decision = await redisCall("checking the rate limit", () => limiter.take(caller, cost));
    } catch (error) {
      bypassed.add(1);
      const heldBack = bypassWarnings.pass();
      if (heldBack !== undefined) {
        log.warn({ err: error, heldBack }, "rate limit not checked (Redis unavailable): letting calls through");
      }
      return;
    }
    if (decision.allowed) return;
    rateLimited.add(1, { caller: callerLabel(caller) });
    throw new ConnectError(
      `rate limit exceeded for caller ${caller}: ${limiter.limit.perSecond} requests/s (retry after ${decision.retryAfterMs} ms)`,
      Code.ResourceExhausted,
      retryPushback(decision.retryAfterMs),
    );
  }

  async function admit(ctx: CallContext, admin: boolean, cost = 1): Promise<void> {
    let identity: Identity;
    try {
      identity = await authenticator.authenticate(ctx);
    } catch (error) {
      if (error instanceof AuthFailure) authFailures.add(1, { reason: error.reason });
      throw error;
    }
    if (admin) {
      try {
        admins.check(identity);
      } catch (error) {
        authFailures.add(1, { reason: "forbidden" });
        // A misconfigured operator key, or an application probing: worth a line, at most one per interval.
        const heldBack = forbiddenWarnings.pass();
        if (heldBack !== undefined) {
          log.warn({ caller: identity.caller, heldBack }, "AdminService call refused: the caller is not an admin");
        }
        throw error;
      }
    }
    await withinLimit(identity.caller, cost);
    attachCaller(ctx, identity.caller, admins.allows(identity));
  }

  return {
    protect<S extends GenServiceMethods>(
      service: GenService<S>,
      handlers: ServiceHandlers<S>,
      { admin = false, costs = {} }: ProtectOptions = {},
    ): ServiceHandlers<S> {
      const guarded: Record<string, AnyHandler> = {};
      for (const method of service.methods) {
        const handler = (handlers as Record<string, AnyHandler>)[method.localName];
        if (typeof handler !== "function") throw new Error(`no handler for ${service.typeName}.${method.name}`);
        const costOf = costs[method.localName] as ((request: unknown) => number) | undefined;
        guarded[method.localName] =
          method.methodKind === "server_streaming"
            ? async function* (request, ctx) {
                await admit(ctx, admin);
                yield* handler(request, ctx) as AsyncIterable<DescMessage>;
              }
            : async (request, ctx) => {
                // At least 1: a call refused for being empty still counts as a call.
                await admit(ctx, admin, Math.max(1, costOf?.(request) ?? 1));
                return handler(request, ctx);
              };
      }
      return guarded as ServiceHandlers<S>;
    },
  };
}
