/** Recurring schedules: each with its cron, time zone, task (and its limits), next and last run (its task linked),
 *  Run now, Pause or Resume, and Delete after a confirmation; and a form for a new one (id, cron, time zone, task
 *  type, priority, payload, overlap, starting deadline; the task's attempt timeout, max attempts, retry delay and multiplier, expiry;
 *  replacing one with the same id), as `taskctl schedule add`. The gateway checks every field and names the one it
 *  refuses. */
import { durationFromMs, durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Schedule, ScheduleOverlap } from "@tm/proto/web";
import { admin, errorText } from "../api.js";
import { announce, field, h, input, replace } from "../dom.js";
import { dateOf, duration, formatTime, priorityName, relative } from "../format.js";
import { table } from "./overview.js";
import { limitsOf } from "./task-detail.js";
import {
  clearInvalid,
  DURATION_HINT,
  durationField,
  type FieldProblem,
  isProblem,
  makePayloadInput,
  makePrioritySelect,
  payloadOf,
  priorityOf,
  refuseField,
  taskLimitFields,
  taskTypeField,
  timeField,
} from "./task-fields.js";
import type { View } from "./view.js";

const REPLACE_LABEL = "Replace an existing schedule with this id";

export const schedulesView: View = (main, { config }) => {
  const status = h("p", { class: "muted", role: "status" });
  const list = h("div");
  let stopped = false;
  /** The ids listed last: whether a Replace replaced one, for the message. */
  let listedIds = new Set<string>();
  const idInput = input("id", { required: true, placeholder: "nightly-report" });
  const cronInput = input("cron", { required: true, placeholder: "0 2 * * *  or  @every 90m" });
  const timezoneInput = input("timezone", { placeholder: "UTC" });
  const type = taskTypeField(config.taskTypes, "schedule-task-types");
  const prioritySelect = makePrioritySelect();
  const payloadInput = makePayloadInput();
  const skipOverlap = input("skip-overlap", { type: "checkbox" });
  // How late a run may still be submitted (`--starting-deadline`); empty: however late.
  const deadlineInput = input("starting-deadline", { placeholder: "10m" });
  // The task's own limits, as `taskctl schedule add --attempt-timeout/--max-attempts/--retry-*/--expires-after/
  // --succeeded-retention`: empty is the pipeline's default.
  const limits = taskLimitFields();
  // Its window and run limit (`--start-at`, `--end-at`, `--max-runs`); empty: none.
  const startAtInput = input("start-at", { placeholder: "2027-01-04T00:00:00Z" });
  const endAtInput = input("end-at", { placeholder: "2027-01-31T00:00:00Z" });
  const maxRunsInput = input("max-runs", { type: "number", min: "1", step: "1", placeholder: "no limit" });
  const replaceBox = input("replace", { type: "checkbox" });
  const createButton = h("button", { type: "submit" }, "Create schedule") as HTMLButtonElement;
  const form = h(
    "form",
    { class: "filters", "aria-label": "New schedule", onsubmit: (event: Event) => void create(event) },
    field("Id", idInput),
    field("Cron (UTC unless a time zone), or @every 90m", cronInput),
    field("Time zone", timezoneInput),
    type.label,
    field("Priority", prioritySelect),
    field("Payload (JSON object)", payloadInput),
    h("label", { class: "inline" }, skipOverlap, " Skip a run while the previous one's task is unfinished"),
    field(`Starting deadline (${DURATION_HINT}, 1d; empty: run however late)`, deadlineInput),
    field("Start at (ISO time; empty: now)", startAtInput),
    field("End at (ISO time; empty: never)", endAtInput),
    field("Max runs (empty: no limit)", maxRunsInput),
    limits.fieldset,
    h("label", { class: "inline" }, replaceBox, ` ${REPLACE_LABEL}`),
    createButton,
  ) as HTMLFormElement;
  replace(
    main,
    h("h1", {}, "Schedules"),
    h(
      "p",
      { class: "muted" },
      "Recurring tasks: a task of the type is submitted at every time the cron expression names.",
    ),
    h("details", {}, h("summary", {}, "New schedule"), form),
    status,
    list,
  );

  async function create(event: Event) {
    event.preventDefault();
    const refuse = (refusal: FieldProblem) => refuseField(form, status, "Not created", refusal);
    const payload = payloadOf(payloadInput);
    if (isProblem(payload)) return refuse(payload);
    const taskLimits = limits.read();
    if (isProblem(taskLimits)) return refuse(taskLimits);
    const deadlineMs = durationField(deadlineInput.value);
    if (deadlineMs === null) {
      return refuse({
        problem: `the starting deadline must be a duration like ${DURATION_HINT}, 1d.`,
        control: deadlineInput,
      });
    }
    const startAt = timeField(startAtInput.value);
    if (startAt === null) {
      return refuse({ problem: "the start must be an ISO time such as 2027-01-04T00:00:00Z.", control: startAtInput });
    }
    const endAt = timeField(endAtInput.value);
    if (endAt === null) {
      return refuse({ problem: "the end must be an ISO time such as 2027-01-31T00:00:00Z.", control: endAtInput });
    }
    clearInvalid(form);
    const id = idInput.value.trim();
    const replacing = replaceBox.checked;
    const existed = listedIds.has(id);
    createButton.disabled = true;
    await act(
      "Create",
      async () => {
        const { schedule } = await admin.createSchedule({
          replace: replacing,
          schedule: {
            id,
            cron: cronInput.value.trim(),
            timezone: timezoneInput.value.trim(),
            overlap: skipOverlap.checked ? ScheduleOverlap.SKIP : ScheduleOverlap.ALLOW,
            ...(deadlineMs === undefined ? {} : { startingDeadline: durationFromMs(deadlineMs) }),
            ...(startAt === undefined ? {} : { startAt: timestampFromDate(startAt) }),
            ...(endAt === undefined ? {} : { endAt: timestampFromDate(endAt) }),
            ...(maxRunsInput.value === "" ? {} : { maxRuns: maxRunsInput.valueAsNumber }),
            task: {
              type: type.input.value.trim(),
              priority: priorityOf(prioritySelect),
              payload,
              ...taskLimits,
            },
          },
        });
        form.reset();
        const next = dateOf(schedule?.nextRunAt);
        // A replaced schedule keeps its pause and its last run.
        if (replacing && existed) {
          return `Replaced schedule ${id}${next ? `: next run ${formatTime(next)}` : schedule?.paused ? " (still paused)" : ""}.`;
        }
        return `Created schedule ${id}${next ? `: first run ${formatTime(next)}` : ""}.`;
      },
      (error) =>
        ConnectError.from(error).code === Code.AlreadyExists ? `. Tick "${REPLACE_LABEL}" to replace it.` : "",
    );
    createButton.disabled = false;
  }

  async function load() {
    status.textContent = "Loading…";
    try {
      const { schedules } = await admin.listSchedules({});
      if (stopped) return;
      listedIds = new Set(schedules.map((schedule) => schedule.id));
      const now = Date.now();
      replace(
        list,
        schedules.length === 0
          ? h("p", {}, "No schedules.")
          : table(
              ["Id", "Cron", "Time zone", "Task", "Next run", "Last run", "Last task", "Created by", "Action"],
              schedules.map((schedule) => row(schedule, now)),
            ),
      );
      status.textContent = `${schedules.length} schedule${schedules.length === 1 ? "" : "s"}.`;
    } catch (error) {
      if (!stopped) status.textContent = `Could not list schedules: ${errorText(error)}`;
    }
  }

  function when(timestamp: Schedule["nextRunAt"], now: number, none: string): Node | string {
    const date = dateOf(timestamp);
    if (!date) return none;
    return h("time", { datetime: date.toISOString(), title: formatTime(date) }, relative(date, now));
  }

  function row(schedule: Schedule, now: number): (string | Node)[] {
    return [
      h("span", { class: "mono" }, schedule.id),
      h("code", {}, schedule.cron),
      schedule.timezone || "UTC",
      `${schedule.task?.type ?? "?"} (${priorityName(schedule.task?.priority ?? 0)})` +
        (schedule.overlap === ScheduleOverlap.SKIP ? ", skips overlaps" : "") +
        (schedule.startingDeadline
          ? `, skips runs later than ${duration(durationMs(schedule.startingDeadline))}`
          : "") +
        (schedule.task && limitsOf(schedule.task) ? `; ${limitsOf(schedule.task)}` : "") +
        (schedule.maxRuns > 0 ? `; ${schedule.runs} of ${schedule.maxRuns} runs` : "") +
        (schedule.endAt ? `; until ${formatTime(dateOf(schedule.endAt))}` : ""),
      schedule.paused
        ? `paused${schedule.pausedBy ? ` by ${schedule.pausedBy}` : ""}`
        : schedule.ended
          ? "ended"
          : when(schedule.nextRunAt, now, "never"),
      when(schedule.lastRunAt, now, "—"),
      schedule.lastTaskId ? h("a", { href: `/tasks/${schedule.lastTaskId}`, class: "mono" }, schedule.lastTaskId) : "—",
      schedule.createdBy || "—",
      h(
        "span",
        { class: "row-actions" },
        actionButton(`Run ${schedule.id} now`, "Run now", () => runNow(schedule.id)),
        schedule.paused
          ? actionButton(`Resume ${schedule.id}`, "Resume", () => resume(schedule.id))
          : actionButton(`Pause ${schedule.id}`, "Pause", () => pause(schedule.id)),
        actionButton(`Delete ${schedule.id}`, "Delete", () => remove(schedule.id)),
      ),
    ];
  }

  function actionButton(label: string, text: string, act: () => Promise<void>): HTMLElement {
    return h("button", { type: "button", class: "secondary", "aria-label": label, onclick: () => void act() }, text);
  }

  /** Runs an action on a schedule, then shows the list again with what happened (or why it failed, and what
   *  `hint` adds to that). */
  async function act(what: string, call: () => Promise<string>, hint: (error: unknown) => string = () => "") {
    try {
      const text = await call();
      announce(text);
      await load();
      status.textContent = text;
    } catch (error) {
      const text = `${what} failed: ${errorText(error)}${hint(error)}`;
      announce(text);
      status.textContent = text;
    }
  }

  // Pausing is undone by Resume at any time and touches no task: no confirmation.
  function pause(id: string) {
    return act("Pause", async () => {
      await admin.pauseSchedule({ id });
      return `Paused schedule ${id}: nothing runs until it is resumed.`;
    });
  }

  // One task, now, outside the schedule's times: cheap to undo (cancel the task), so no confirmation.
  function runNow(id: string) {
    return act("Run now", async () => {
      const { taskId } = await admin.runSchedule({ id });
      return `Ran schedule ${id} now: task ${taskId}.`;
    });
  }

  function resume(id: string) {
    return act("Resume", async () => {
      const { schedule } = await admin.resumeSchedule({ id });
      const next = dateOf(schedule?.nextRunAt);
      return `Resumed schedule ${id}${next ? `: next run ${formatTime(next)}` : ""}.`;
    });
  }

  async function remove(id: string) {
    if (!window.confirm(`Delete schedule ${id}? Its tasks already submitted are not touched.`)) return;
    await act("Delete", async () => {
      const { deleted } = await admin.deleteSchedule({ id });
      return deleted ? `Deleted schedule ${id}.` : `Schedule ${id} was already gone.`;
    });
  }

  void load();
  return () => {
    stopped = true;
  };
};
