/**
 * What a Redis span records as `db.query.text` (formerly `db.statement`). The ioredis instrumentation's default
 * serializer keeps every argument of EVAL and EVALSHA, and our Lua scripts take their data as arguments: the status
 * event, the audit event, the task's result (its output). Every script call would copy task data into the trace
 * backend, which has its own retention and access rules, and make each span hundreds of bytes larger. For scripts we
 * keep the script and its keys (which name the task) and count the other arguments; every other command keeps the
 * default, which already leaves out values (SET and HSET record the key, PUBLISH the channel).
 */
import { defaultDbStatementSerializer } from "@opentelemetry/redis-common";

const SCRIPT_CALL = /^(eval|evalsha|eval_ro|evalsha_ro|fcall|fcall_ro)$/i;

type CommandArgs = Parameters<typeof defaultDbStatementSerializer>[1];

export function redisStatement(command: string, args: CommandArgs): string {
  if (!SCRIPT_CALL.test(command)) return defaultDbStatementSerializer(command, args);
  // EVAL script numkeys key [key ...] arg [arg ...] (EVALSHA sha1 ..., FCALL function ...): the same shape.
  const [script, numkeys, ...rest] = args;
  const keyCount = Number(numkeys);
  if (script === undefined || !Number.isInteger(keyCount) || keyCount < 0) {
    return `${command} [${args.length} arguments]`;
  }
  // EVAL's script is Lua source: long, and what it does is in the code, not the trace. A SHA or function name stays.
  const name = /^eval(_ro)?$/i.test(command) ? "<script>" : String(script);
  const keys = rest.slice(0, keyCount).map(String);
  const others = rest.length - keys.length;
  return [command, name, String(keyCount), ...keys, ...(others > 0 ? [`[${others} other arguments]`] : [])].join(" ");
}
