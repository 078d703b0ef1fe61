/**
 * Lua scripts run by their SHA1 (EVALSHA), loading the source only when Redis does not know it yet (NOSCRIPT: first
 * use, or after a Redis restart or SCRIPT FLUSH). EVAL would send and hash the whole source on every call: these
 * scripts run once per status update and per audit event, so that was most of the bytes each call sent.
 */
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

export type ScriptArg = string | number;

export interface LuaScript {
  readonly sha: string;
  run(redis: Redis, keys: readonly string[], args: readonly ScriptArg[]): Promise<unknown>;
}

export function luaScript(source: string): LuaScript {
  const sha = createHash("sha1").update(source).digest("hex");
  return {
    sha,
    async run(redis, keys, args) {
      try {
        return await redis.evalsha(sha, keys.length, ...keys, ...args);
      } catch (error) {
        if (!String((error as Error)?.message).startsWith("NOSCRIPT")) throw error;
        // EVAL runs it and caches it under the same SHA for the next calls.
        return redis.eval(source, keys.length, ...keys, ...args);
      }
    },
  };
}
