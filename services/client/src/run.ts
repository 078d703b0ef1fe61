/**
 * taskctl's entry point as a function: argv in, exit code out, output through `io`. The bin (cli.ts) wires it to
 * the process; tests call it directly.
 */
import { parseCommandLine } from "./args.js";
import {
  cancelAllCommand,
  concurrencyCommand,
  dlqCommand,
  fairnessCommand,
  historyCommand,
  lsCommand,
  queuePauseCommand,
  requeueCommand,
  requeueStalledCommand,
  statsCommand,
  workerQuietCommand,
  workersCommand,
} from "./commands/admin.js";
import { cancelCommand } from "./commands/cancel.js";
import { demoCommand } from "./commands/demo.js";
import { getCommand } from "./commands/get.js";
import { graphCommand } from "./commands/graph.js";
import { healthCommand } from "./commands/health.js";
import { limitsCommand } from "./commands/limits.js";
import { logsCommand } from "./commands/logs.js";
import { promoteCommand } from "./commands/promote.js";
import { resultCommand } from "./commands/result.js";
import { scheduleCommand } from "./commands/schedules.js";
import { submitCommand } from "./commands/submit.js";
import { submitBatchCommand } from "./commands/submit-batch.js";
import { watchCommand } from "./commands/watch.js";
import { adminClientFor, healthClientFor, taskClientFor } from "./connection.js";
import { describeError, type ExitCode } from "./exit-codes.js";
import { type Io, println } from "./io.js";

export { ExitCode } from "./exit-codes.js";
export type { Io, Output } from "./io.js";

export async function run(argv: string[], io: Io): Promise<ExitCode> {
  let addr = "";
  try {
    const invocation = parseCommandLine(argv, io.env);
    if (invocation.command === "help") {
      println(io.stdout, invocation.text);
      return 0;
    }
    const { globals } = invocation;
    addr = globals.addr;
    switch (invocation.command) {
      case "submit":
        return await submitCommand(io, taskClientFor(globals), invocation);
      case "submit-batch":
        return await submitBatchCommand(io, taskClientFor(globals), invocation);
      case "get":
        return await getCommand(io, taskClientFor(globals), invocation.taskId, globals.json);
      case "graph":
        return await graphCommand(io, taskClientFor(globals), { ...invocation, json: globals.json });
      case "watch":
        return await watchCommand(io, taskClientFor(globals), invocation.taskIds, globals.json);
      case "cancel":
        return await cancelCommand(io, taskClientFor(globals), invocation, globals.json);
      case "logs":
        return await logsCommand(io, taskClientFor(globals), invocation.taskId, {
          follow: invocation.follow,
          json: globals.json,
        });
      case "promote":
        return await promoteCommand(io, taskClientFor(globals), invocation.taskId, globals.json);
      case "cancel-all":
        return await cancelAllCommand(io, adminClientFor(globals), invocation);
      case "requeue-stalled":
        return await requeueStalledCommand(io, adminClientFor(globals), invocation);
      case "result":
        return await resultCommand(io, invocation.resultStoreUrl, invocation.taskId, globals.json);
      case "demo":
        return await demoCommand(io, taskClientFor(globals), { ...invocation, json: globals.json });
      case "health":
        return await healthCommand(io, healthClientFor(globals), addr, globals.json);
      case "stats":
        return await statsCommand(io, adminClientFor(globals), globals.json);
      case "workers":
        return await workersCommand(io, adminClientFor(globals), globals.json);
      case "workers-quiet":
      case "workers-resume":
        return await workerQuietCommand(io, adminClientFor(globals), invocation);
      case "concurrency":
        return await concurrencyCommand(io, adminClientFor(globals), invocation);
      case "fairness":
        return await fairnessCommand(io, adminClientFor(globals), invocation);
      case "ls":
        return await lsCommand(io, adminClientFor(globals), { ...invocation, json: globals.json });
      case "history":
        return await historyCommand(io, adminClientFor(globals), invocation.taskId, globals.json);
      case "dlq":
        return await dlqCommand(io, adminClientFor(globals), invocation);
      case "requeue":
        return await requeueCommand(io, adminClientFor(globals), invocation);
      case "pause":
      case "resume":
        return await queuePauseCommand(io, adminClientFor(globals), invocation);
      case "schedule":
        return await scheduleCommand(io, adminClientFor(globals), invocation);
      case "limits":
        return await limitsCommand(io, adminClientFor(globals), invocation);
    }
  } catch (error) {
    const { exitCode, message } = describeError(error, addr);
    println(io.stderr, `taskctl: ${message}`);
    return exitCode;
  }
}
