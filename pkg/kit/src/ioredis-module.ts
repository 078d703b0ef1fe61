/**
 * ioredis, loaded with require() rather than an ES import. OpenTelemetry's ioredis instrumentation patches the
 * package when it is require()d (require-in-the-middle); an ES import goes through Node's ESM loader, which only an
 * ESM loader hook could intercept, and on Node 20 that hook runs in a thread of its own in every process (~15 MB of
 * RSS each: docs/PERFORMANCE.md), so the preload no longer registers one. The instrumentation wraps methods of the
 * package's prototypes in place, so requiring it here also covers an ES import of it elsewhere in the process, as
 * long as this module is evaluated before the first command is sent (connectRedis imports it).
 */
import { createRequire } from "node:module";

type IORedis = typeof import("ioredis");

const ioredis: IORedis = createRequire(import.meta.url)("ioredis");

export const Redis: IORedis["Redis"] = ioredis.Redis;
export type Redis = import("ioredis").Redis;
export const Pipeline: IORedis["Pipeline"] = ioredis.Pipeline;
