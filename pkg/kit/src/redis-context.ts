/**
 * Keeps each Redis command in the trace of the code that issued it, with ioredis's auto-pipelining on.
 *
 * Auto-pipelining queues a command on a pipeline in the caller's context, but the pipeline is sent later, from a
 * setImmediate scheduled by the first command of the batch, and the ioredis instrumentation starts a command's span
 * when it is sent (`Redis.prototype.sendCommand`). So every command of a batch became a child of the first caller's
 * span: under load most Redis spans sat in another task's trace (measured with 16 tasks in flight: three in four), and
 * were missing from their own. This remembers the context each command was queued in and sends the command in it;
 * the span, and anything else that reads the active context there, then belongs to the caller.
 *
 * Installed once per process, after the instrumentation has wrapped ioredis (the preload starts it before any service
 * code runs, and ioredis-module.ts require()s the package, which is when the instrumentation patches it), so this
 * wrapper runs first and the instrumentation sees the caller's context.
 */
import { type Context, context } from "@opentelemetry/api";
import { Pipeline, Redis } from "./ioredis-module.js";

const QUEUED_IN = Symbol("tm.redis.queuedInContext");

type Queued = { [QUEUED_IN]?: Context };
type SendCommand = (this: unknown, command: Queued, ...rest: unknown[]) => unknown;

let installed = false;

export function keepRedisCommandContext(): void {
  if (installed) return;
  installed = true;
  const pipelineProto = Pipeline.prototype as unknown as { sendCommand: SendCommand };
  const queue = pipelineProto.sendCommand;
  pipelineProto.sendCommand = function queueInCallersContext(command, ...rest) {
    if (command && typeof command === "object") command[QUEUED_IN] = context.active();
    return queue.call(this, command, ...rest);
  };
  const redisProto = Redis.prototype as unknown as { sendCommand: SendCommand };
  const send = redisProto.sendCommand;
  redisProto.sendCommand = function sendInCallersContext(command, ...rest) {
    const queuedIn = command?.[QUEUED_IN];
    if (queuedIn === undefined || queuedIn === context.active()) return send.call(this, command, ...rest);
    return context.with(queuedIn, () => send.call(this, command, ...rest));
  };
}
