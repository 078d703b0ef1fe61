/** `taskctl limits ls|set|clear|pause|resume`: fleet-wide limits on a task type, changed at run time (AdminService
 *  *TypeLimit, PauseType, ResumeType). */
import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import {
  type AdminClient,
  ClearTypeLimitResponseSchema,
  ListTypeLimitsResponseSchema,
  PauseTypeResponseSchema,
  ResumeTypeResponseSchema,
  SetTypeLimitResponseSchema,
  type TypeBackoff,
  type TypeLimit,
} from "@tm/proto";
import { table } from "../admin-render.js";
import type { Invocation } from "../args.js";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";

const options = { timeoutMs: UNARY_TIMEOUT_MS };

/** Starts per second as the operator would write it: 10/s, 30/m, 2/h. */
export function formatRate(perSecond: number): string {
  const round = (n: number) => String(Math.round(n * 1_000) / 1_000);
  if (perSecond >= 1) return `${round(perSecond)}/s`;
  if (perSecond * 60 >= 1) return `${round(perSecond * 60)}/m`;
  return `${round(perSecond * 3_600)}/h`;
}

/** A type's limits in words: "global concurrency 2, rate 10/s (burst 5)". */
export function describeLimit(limit: TypeLimit): string {
  const parts: string[] = [];
  if (limit.globalConcurrency) parts.push(`global concurrency ${limit.globalConcurrency}`);
  if (limit.ratePerSecond) {
    parts.push(`rate ${formatRate(limit.ratePerSecond)}${limit.rateBurst > 1 ? ` (burst ${limit.rateBurst})` : ""}`);
  }
  if (limit.paused) parts.push("paused (no worker starts one)");
  return parts.join(", ") || "none";
}

/** The types backing off now, one line each: "flaky: rate limited downstream, no worker starts one for 12.3 s (…)". */
export function renderBackoffs(backoffs: TypeBackoff[]): string {
  return backoffs
    .map((backoff) => {
      const seconds = backoff.remaining ? (durationMs(backoff.remaining) / 1_000).toFixed(1) : "0";
      return `${backoff.type}: rate limited by its downstream, no worker starts one for ${seconds} s more (told to ${backoff.setBy || "a worker"})`;
    })
    .join("\n");
}

export function renderTypeLimits(limits: TypeLimit[], backoffs: TypeBackoff[] = []): string {
  const limitTable = renderLimitTable(limits);
  return backoffs.length === 0 ? limitTable : `${limitTable}\n\n${renderBackoffs(backoffs)}`;
}

function renderLimitTable(limits: TypeLimit[]): string {
  if (limits.length === 0) return "no run-time limits (the workers' own WORKER_TYPE_* settings apply)";
  const rows = limits.map((limit) => [
    limit.type,
    limit.globalConcurrency ? `${limit.running}/${limit.globalConcurrency}` : "-",
    limit.ratePerSecond ? formatRate(limit.ratePerSecond) + (limit.rateBurst > 1 ? `:${limit.rateBurst}` : "") : "-",
    limit.paused ? "yes" : "-",
    limit.setBy || "-",
    limit.setAt ? timestampDate(limit.setAt).toISOString() : "-",
  ]);
  return table(
    ["TYPE", "RUNNING/GLOBAL", "RATE", "PAUSED", "SET BY", "SET AT"].map((header) => ({ header })),
    rows,
  );
}

export async function limitsCommand(
  io: Io,
  client: AdminClient,
  invocation: Extract<Invocation, { command: "limits" }>,
): Promise<ExitCode> {
  /** Prints the response as JSON (--json) or as `text` says it, and succeeds. */
  const answer = <Desc extends DescMessage>(schema: Desc, response: MessageShape<Desc>, text: () => string) => {
    println(io.stdout, invocation.globals.json ? JSON.stringify(toJson(schema, response)) : text());
    return ExitCode.Ok;
  };
  const applied = "the workers apply it within a second";
  switch (invocation.action) {
    case "ls": {
      const response = await client.listTypeLimits({}, options);
      return answer(ListTypeLimitsResponseSchema, response, () => renderTypeLimits(response.limits, response.backoffs));
    }
    case "set": {
      const { type, globalConcurrency, rate, paused } = invocation;
      const response = await client.setTypeLimit(
        {
          limit: {
            type,
            globalConcurrency: globalConcurrency ?? 0,
            ratePerSecond: rate?.perSecond ?? 0,
            rateBurst: rate?.burst ?? 0,
            paused: paused === true,
          },
          // Without --paused the type's pause stays as it is: changing a rate during a pause does not lift it.
          keepPause: paused !== true,
        },
        options,
      );
      const replaced = response.previous ? ` (was: ${describeLimit(response.previous)})` : "";
      return answer(
        SetTypeLimitResponseSchema,
        response,
        () => `${type}: ${describeLimit(response.limit!)}${replaced}; ${applied}`,
      );
    }
    case "clear": {
      const { type } = invocation;
      const response = await client.clearTypeLimit({ type }, options);
      return answer(ClearTypeLimitResponseSchema, response, () =>
        response.cleared
          ? `${type}: cleared (the workers' own settings apply again)`
          : `${type}: had no run-time limits`,
      );
    }
    case "pause": {
      const { type } = invocation;
      const response = await client.pauseType({ type }, options);
      return answer(PauseTypeResponseSchema, response, () =>
        response.wasPaused
          ? `${type}: paused already (${describeLimit(response.limit!)})`
          : `${type}: ${describeLimit(response.limit!)}; ${applied}`,
      );
    }
    case "resume": {
      const { type } = invocation;
      const response = await client.resumeType({ type }, options);
      const left = response.limit ? `its limits: ${describeLimit(response.limit)}` : "no run-time limits left";
      return answer(ResumeTypeResponseSchema, response, () =>
        response.wasPaused ? `${type}: resumed (${left}); ${applied}` : `${type}: was not paused (${left})`,
      );
    }
  }
}
