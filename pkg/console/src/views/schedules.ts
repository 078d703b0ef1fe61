/** Recurring schedules: each with its cron, time zone, task (and its limits), next and last run (its task linked),
 *  Run now, Pause or Resume, and Delete after a confirmation; and a form for a new one (id, cron, time zone, task
 *  type, priority, payload, overlap, starting deadline; the task's attempt timeout, max attempts, retry delay and multiplier, expiry;
 *  replacing one with the same id), as `taskctl schedule add`. The gateway checks every field and names the one it
 *  refuses. */
import type { JsonObject } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Priority, type Schedule, ScheduleOverlap } from "@tm/proto/web";
import { admin, errorText } from "../api.js";
import { announce, h, replace } from "../dom.js";
import { dateOf, duration, formatTime, priorityName, relative } from "../format.js";
import { table } from "./overview.js";
import { limitsOf } from "./task-detail.js";
import type { View } from "./view.js";

const REPLACE_LABEL = "Replace an existing schedule with this id";

export const schedulesView: View = (main) => {
  const status = h("p", { class: "muted", role: "status" });
  const list = h("div");
  let stopped = false;
  /** The ids listed last: whether a Replace replaced one, for the message. */
  let listedIds = new Set<string>();
  const input = (name: string, attributes: Record<string, string | boolean> = {}) =>
    h("input", { name, autocomplete: "off", ...attributes }) as HTMLInputElement;
  const field = (label: string, control: HTMLElement) => h("label", {}, h("span", {}, label), control);
  const idInput = input("id", { required: true, placeholder: "nightly-report" });
  const cronInput = input("cron", { required: true, placeholder: "0 2 * * *  or  @every 90m" });
  const timezoneInput = input("timezone", { placeholder: "UTC" });
  const typeInput = input("type", { required: true, placeholder: "echo" });
  const prioritySelect = h(
    "select",
    { name: "priority" },
    ...["MEDIUM", "HIGH", "LOW"].map((p) => h("option", { value: p }, p.toLowerCase())),
  ) as HTMLSelectElement;
  const payloadInput = h("textarea", { name: "payload", rows: 3, cols: 40, placeholder: "{}" }) as HTMLTextAreaElement;
  const skipOverlap = input("skip-overlap", { type: "checkbox" });
  // How late a run may still be submitted (`--starting-deadline`); empty: however late.
  const deadlineInput = input("starting-deadline", { placeholder: "10m" });
  // The task's own limits, as `taskctl schedule add --attempt-timeout/--max-attempts/--retry-*/--expires-after`:
  // empty is the pipeline's default. Only the format is checked here; the gateway checks the values.
  const timeoutInput = input("timeout", { placeholder: "30s" });
  const heartbeatInput = input("heartbeat-timeout", { placeholder: "5m" });
  const maxAttemptsInput = input("max-attempts", { type: "number", min: "1", step: "1", placeholder: "all" });
  const retryDelayInput = input("retry-delay", { placeholder: "10s" });
  const retryMultiplierInput = input("retry-multiplier", { type: "number", step: "any", placeholder: "1" });
  const expiresInput = input("expires-after", { placeholder: "1h" });
  // `--succeeded-retention`: how long each run's task is kept once it succeeded; empty: the deployment's.
  const succeededRetentionInput = input("succeeded-retention", { placeholder: "1h" });
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
    field("Task type", typeInput),
    field("Priority", prioritySelect),
    field("Payload (JSON object)", payloadInput),
    h("label", { class: "inline" }, skipOverlap, " Skip a run while the previous one's task is unfinished"),
    field(`Starting deadline (${DURATION_HINT}, 1d; empty: run however late)`, deadlineInput),
    field("Start at (ISO time; empty: now)", startAtInput),
    field("End at (ISO time; empty: never)", endAtInput),
    field("Max runs (empty: no limit)", maxRunsInput),
    h(
      "fieldset",
      { class: "filters" },
      h("legend", {}, "Task limits (optional; empty: the pipeline's defaults)"),
      field(`Attempt timeout (${DURATION_HINT})`, timeoutInput),
      field(`Heartbeat timeout (${DURATION_HINT}: no progress report that long aborts an attempt)`, heartbeatInput),
      field("Max attempts", maxAttemptsInput),
      field(`Retry delay (${DURATION_HINT})`, retryDelayInput),
      field("Retry multiplier (with a delay)", retryMultiplierInput),
      field(`Expires after (${DURATION_HINT}, 1d)`, expiresInput),
      field(`Kept once succeeded (${DURATION_HINT}, 1d; at least 60s)`, succeededRetentionInput),
    ),
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
    const refuse = (problem: string) => {
      status.textContent = `Not created: ${problem}`;
      announce(status.textContent);
    };
    let payload: JsonObject = {};
    const text = payloadInput.value.trim();
    if (text) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
        payload = parsed as JsonObject;
      } catch {
        return refuse('the payload must be a JSON object, e.g. {"n": 1}.');
      }
    }
    const limits = taskLimits();
    if (typeof limits === "string") return refuse(limits);
    const deadlineMs = durationField(deadlineInput.value);
    if (deadlineMs === null) return refuse(`the starting deadline must be a duration like ${DURATION_HINT}, 1d.`);
    const startAt = timeField(startAtInput.value);
    if (startAt === null) return refuse("the start must be an ISO time such as 2027-01-04T00:00:00Z.");
    const endAt = timeField(endAtInput.value);
    if (endAt === null) return refuse("the end must be an ISO time such as 2027-01-31T00:00:00Z.");
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
              type: typeInput.value.trim(),
              priority: Priority[prioritySelect.value as keyof typeof Priority] ?? Priority.MEDIUM,
              payload,
              ...limits,
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

  /** The task limits the form sets (ScheduledTask's timeout, max_attempts, retry_backoff, expires_after), or what
   *  is malformed. */
  function taskLimits() {
    const timeoutMs = durationField(timeoutInput.value);
    const heartbeatMs = durationField(heartbeatInput.value);
    const retryDelayMs = durationField(retryDelayInput.value);
    const expiresMs = durationField(expiresInput.value);
    const succeededRetentionMs = durationField(succeededRetentionInput.value);
    const multiplier = retryMultiplierInput.value === "" ? undefined : retryMultiplierInput.valueAsNumber;
    if (timeoutMs === null) return `the attempt timeout must be a duration like ${DURATION_HINT}.`;
    if (heartbeatMs === null) return `the heartbeat timeout must be a duration like ${DURATION_HINT}.`;
    if (retryDelayMs === null) return `the retry delay must be a duration like ${DURATION_HINT}.`;
    if (expiresMs === null) return `the expiry must be a duration like ${DURATION_HINT}, 1d.`;
    if (succeededRetentionMs === null)
      return `the time kept once succeeded must be a duration like ${DURATION_HINT}, 1d.`;
    if (multiplier !== undefined && retryDelayMs === undefined) {
      return "a retry multiplier needs a retry delay (the wait after the first failed attempt).";
    }
    return {
      ...(timeoutMs === undefined ? {} : { timeout: durationFromMs(timeoutMs) }),
      ...(heartbeatMs === undefined ? {} : { heartbeatTimeout: durationFromMs(heartbeatMs) }),
      ...(maxAttemptsInput.value === "" ? {} : { maxAttempts: maxAttemptsInput.valueAsNumber }),
      ...(retryDelayMs === undefined
        ? {}
        : { retryBackoff: { delay: durationFromMs(retryDelayMs), multiplier: multiplier ?? 0 } }),
      ...(expiresMs === undefined ? {} : { expiresAfter: durationFromMs(expiresMs) }),
      ...(succeededRetentionMs === undefined ? {} : { succeededRetention: durationFromMs(succeededRetentionMs) }),
    };
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

const DURATION_HINT = "30s, 15m, 2h";
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A time field's text (an ISO time, "2027-01-31T00:00:00Z") as a Date: undefined when empty, null when malformed. */
function timeField(text: string): Date | undefined | null {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  const ms = Date.parse(trimmed);
  return /^\d{4}-\d{2}-\d{2}T/.test(trimmed) && !Number.isNaN(ms) ? new Date(ms) : null;
}

/** A duration field's text ("30s", "15m", "2h", "1d", "500ms"; a bare number is seconds) in ms: undefined when
 *  empty, null when malformed. */
function durationField(text: string): number | undefined | null {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(trimmed);
  return match ? Math.round(Number(match[1]) * (DURATION_UNIT_MS[match[2] ?? "s"] ?? 1_000)) : null;
}
