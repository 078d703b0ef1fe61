/**
 * Parsing of the per-type limits (WORKER_TYPE_CONCURRENCY, WORKER_TYPE_GLOBAL_CONCURRENCY, WORKER_TYPE_RATES). Each
 * names task types the worker has a handler for, so a typo stops the worker at start with the list of known types
 * instead of limiting nothing: checked at start against TASK_TYPES (config.ts typeNamesProblem), which the schema
 * parsing one variable at a time cannot see.
 */
import type { TypeRate } from "@tm/store";
import { HANDLER_ISOLATIONS, type HandlerIsolation } from "./handlers/types.js";

const RATE_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600 };
export const MAX_CONCURRENCY = 10_000;
const MAX_PER_SECOND = 100_000;

/** Splits "a=1, b=2" into [type, value] pairs, checking each type is named once. */
function entries(text: string, shape: string): [string, string][] {
  const pairs: [string, string][] = [];
  for (const part of text.split(",").map((p) => p.trim())) {
    if (part === "") continue;
    const match = /^([^=\s]+)\s*=\s*(\S+)$/.exec(part);
    if (!match) throw new Error(`"${part}" must be ${shape}`);
    const [, type, value] = match as unknown as [string, string, string];
    if (pairs.some(([seen]) => seen === type)) throw new Error(`"${type}" is named twice`);
    pairs.push([type, value]);
  }
  return pairs;
}

/** "checksum=2,sleep=4": at most that many tasks of the type run at once in this worker. Throws, saying why. */
export function parseTypeConcurrency(text: string): Map<string, number> {
  const limits = new Map<string, number>();
  for (const [type, value] of entries(text, 'TYPE=N, e.g. "checksum=2"')) {
    const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
    if (!isConcurrency(n)) {
      throw new Error(`"${type}=${value}": the limit must be a whole number from 1 to ${MAX_CONCURRENCY}`);
    }
    limits.set(type, n);
  }
  return limits;
}

/** "resize=thread,quick=none": where each type's attempts run, replacing its handler's `isolation`. Throws, saying
 *  why. */
export function parseTypeIsolation(text: string): Map<string, HandlerIsolation> {
  const isolations = new Map<string, HandlerIsolation>();
  for (const [type, value] of entries(text, 'TYPE=thread or TYPE=none, e.g. "resize=thread"')) {
    if (!(HANDLER_ISOLATIONS as readonly string[]).includes(value)) {
      throw new Error(`"${type}=${value}": the isolation must be ${HANDLER_ISOLATIONS.join(" or ")}`);
    }
    isolations.set(type, value as HandlerIsolation);
  }
  return isolations;
}

/** A per-type concurrency limit's bounds (WORKER_TYPE_CONCURRENCY, WORKER_TYPE_GLOBAL_CONCURRENCY, a handler's own). */
export function isConcurrency(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= MAX_CONCURRENCY;
}

/** The shape of one rate: "10/s", "100/m:10". */
export const RATE_SHAPE = 'N/UNIT[:BURST] with UNIT s, m or h, e.g. "10/s" or "100/m:10"';

/** One rate, "N/UNIT[:BURST]"; undefined when it is not of that shape. Throws when a number is out of bounds. */
export function parseRate(value: string): TypeRate | undefined {
  const match = /^(\d+(?:\.\d+)?)\/([smh])(?::(\d+))?$/.exec(value);
  if (!match) return undefined;
  const [, count, unit, burst] = match as unknown as [string, string, string, string | undefined];
  const perSecond = Number(count) / (RATE_UNITS[unit] as number);
  if (!(perSecond > 0 && perSecond <= MAX_PER_SECOND)) {
    throw new Error(`the rate must be above 0 and at most ${MAX_PER_SECOND}/s`);
  }
  const burstCount = burst === undefined ? 1 : Number(burst);
  if (!(burstCount >= 1 && burstCount <= MAX_CONCURRENCY)) {
    throw new Error(`the burst must be a whole number from 1 to ${MAX_CONCURRENCY}`);
  }
  return { perSecond, burst: burstCount };
}

/** "checksum=10/s,email=100/m:10": at most that many starts of the type per second / minute / hour across every
 *  worker, after a burst of `:B` starts at once (default 1). Throws, saying why. */
export function parseTypeRates(text: string): Map<string, TypeRate> {
  const rates = new Map<string, TypeRate>();
  const shape = 'TYPE=N/UNIT[:BURST] with UNIT s, m or h, e.g. "checksum=10/s" or "email=100/m:10"';
  for (const [type, value] of entries(text, shape)) {
    let rate: TypeRate | undefined;
    try {
      rate = parseRate(value);
    } catch (error) {
      throw new Error(`"${type}=${value}": ${(error as Error).message}`);
    }
    if (!rate) throw new Error(`"${type}=${value}" must be ${shape}`);
    rates.set(type, rate);
  }
  return rates;
}

/** The per-type limits a worker applies: each type's own (its handler's), replaced by the WORKER_TYPE_* settings'
 *  entry for the type where there is one (an operator's run-time limits replace both, runtime-limits.ts). */
export function typeLimitSettings(
  handlers: ReadonlyArray<{ type: string; concurrency?: number; globalConcurrency?: number; rate?: TypeRate }>,
  settings: {
    WORKER_TYPE_CONCURRENCY: ReadonlyMap<string, number>;
    WORKER_TYPE_GLOBAL_CONCURRENCY: ReadonlyMap<string, number>;
    WORKER_TYPE_RATES: ReadonlyMap<string, TypeRate>;
  },
): { concurrency: Map<string, number>; globalConcurrency: Map<string, number>; rates: Map<string, TypeRate> } {
  const own = <T>(pick: (handler: (typeof handlers)[number]) => T | undefined) =>
    handlers.flatMap((handler): Array<[string, T]> => {
      const value = pick(handler);
      return value === undefined ? [] : [[handler.type, value]];
    });
  return {
    concurrency: new Map([...own((h) => h.concurrency), ...settings.WORKER_TYPE_CONCURRENCY]),
    globalConcurrency: new Map([...own((h) => h.globalConcurrency), ...settings.WORKER_TYPE_GLOBAL_CONCURRENCY]),
    rates: new Map([...own((h) => h.rate), ...settings.WORKER_TYPE_RATES]),
  };
}
