/** `taskctl schedule add|ls|rm|pause|resume|run`: recurring tasks (AdminService CreateSchedule, ListSchedules,
 *  DeleteSchedule, PauseSchedule, ResumeSchedule, RunSchedule). */
import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type AdminClient,
  CreateScheduleResponseSchema,
  DeleteScheduleResponseSchema,
  ListSchedulesResponseSchema,
  PauseScheduleResponseSchema,
  ResumeScheduleResponseSchema,
  RunScheduleResponseSchema,
  ScheduleOverlap,
} from "@tm/proto";
import { renderSchedules } from "../admin-render.js";
import type { Invocation } from "../args.js";
import { UNARY_TIMEOUT_MS } from "../connection.js";
import { CliError, ExitCode } from "../exit-codes.js";
import { type Io, println } from "../io.js";
import { fairnessFields, taskLimitFields } from "../task-limits.js";

type ScheduleInvocation = Extract<Invocation, { command: "schedule" }>;

export async function scheduleCommand(io: Io, client: AdminClient, invocation: ScheduleInvocation): Promise<ExitCode> {
  const { json } = invocation.globals;
  const options = { timeoutMs: UNARY_TIMEOUT_MS };
  /** The response as JSON with --json, else the text for people. */
  const answer = <Desc extends DescMessage>(schema: Desc, response: MessageShape<Desc>, text: () => string) => {
    println(io.stdout, json ? JSON.stringify(toJson(schema, response)) : text());
    return ExitCode.Ok;
  };
  switch (invocation.action) {
    case "ls": {
      const response = await client.listSchedules({}, options);
      return answer(ListSchedulesResponseSchema, response, () => renderSchedules(response.schedules, Date.now()));
    }
    case "rm": {
      const response = await client.deleteSchedule({ id: invocation.id }, options);
      if (!response.deleted) throw new CliError(`not found: no schedule ${invocation.id}`, ExitCode.NotFound);
      return answer(DeleteScheduleResponseSchema, response, () => `${invocation.id}: deleted`);
    }
    case "pause": {
      const response = await client.pauseSchedule({ id: invocation.id }, options);
      return answer(
        PauseScheduleResponseSchema,
        response,
        () => `${invocation.id}: paused (no runs until taskctl schedule resume ${invocation.id})`,
      );
    }
    case "run": {
      // Not NOT_FOUND-mapped by hand: an unknown id's NOT_FOUND exits 3 through describeError.
      const response = await client.runSchedule({ id: invocation.id }, options);
      return answer(RunScheduleResponseSchema, response, () => response.taskId);
    }
    case "resume": {
      const response = await client.resumeSchedule({ id: invocation.id }, options);
      const shown = () => renderSchedules(response.schedule ? [response.schedule] : [], Date.now());
      return answer(
        ResumeScheduleResponseSchema,
        response,
        () => `${invocation.id}: ${response.wasPaused ? "resumed" : "was not paused"}\n${shown()}`,
      );
    }
    case "add": {
      const response = await client.createSchedule(
        {
          replace: invocation.replace,
          schedule: {
            id: invocation.id,
            cron: invocation.cron,
            timezone: invocation.timezone ?? "",
            overlap: invocation.overlap === "skip" ? ScheduleOverlap.SKIP : ScheduleOverlap.ALLOW,
            ...(invocation.startingDeadlineMs === undefined
              ? {}
              : { startingDeadline: durationFromMs(invocation.startingDeadlineMs) }),
            ...(invocation.startAt ? { startAt: timestampFromDate(invocation.startAt) } : {}),
            ...(invocation.endAt ? { endAt: timestampFromDate(invocation.endAt) } : {}),
            ...(invocation.maxRuns ? { maxRuns: invocation.maxRuns } : {}),
            task: {
              type: invocation.type,
              ...(invocation.payload ? { payload: invocation.payload } : {}),
              priority: invocation.priority,
              metadata: invocation.metadata,
              ...taskLimitFields(invocation),
              ...(invocation.succeededRetentionMs
                ? { succeededRetention: durationFromMs(invocation.succeededRetentionMs) }
                : {}),
              ...(invocation.concurrency
                ? { concurrencyKey: invocation.concurrency.key, concurrencyLimit: invocation.concurrency.limit }
                : {}),
              ...fairnessFields(invocation.fairness),
            },
          },
        },
        options,
      );
      return answer(CreateScheduleResponseSchema, response, () =>
        renderSchedules(response.schedule ? [response.schedule] : [], Date.now()),
      );
    }
  }
}
