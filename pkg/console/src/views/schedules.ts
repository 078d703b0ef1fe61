/** Recurring schedules: each with its cron, time zone, task, next and last run (its task linked), Run now, Pause or
 *  Resume, and Delete after a confirmation; and a form for a new one (id, cron, time zone, task type, priority,
 *  payload, overlap), as `taskctl schedule add` without the task's limits (which taskctl takes). The gateway checks
 *  every field and names the one it refuses. */
import type { JsonObject } from "@bufbuild/protobuf";
import { Priority, type Schedule, ScheduleOverlap } from "@tm/proto/web";
import { admin, errorText } from "../api.js";
import { announce, h, replace } from "../dom.js";
import { dateOf, formatTime, priorityName, relative } from "../format.js";
import { table } from "./overview.js";
import type { View } from "./view.js";

export const schedulesView: View = (main) => {
  const status = h("p", { class: "muted", role: "status" });
  const list = h("div");
  let stopped = false;
  const input = (name: string, attributes: Record<string, string | boolean> = {}) =>
    h("input", { name, autocomplete: "off", ...attributes }) as HTMLInputElement;
  const field = (label: string, control: HTMLElement) => h("label", {}, h("span", {}, label), control);
  const idInput = input("id", { required: true, placeholder: "nightly-report" });
  const cronInput = input("cron", { required: true, placeholder: "0 2 * * *" });
  const timezoneInput = input("timezone", { placeholder: "UTC" });
  const typeInput = input("type", { required: true, placeholder: "echo" });
  const prioritySelect = h(
    "select",
    { name: "priority" },
    ...["MEDIUM", "HIGH", "LOW"].map((p) => h("option", { value: p }, p.toLowerCase())),
  ) as HTMLSelectElement;
  const payloadInput = h("textarea", { name: "payload", rows: 3, cols: 40, placeholder: "{}" }) as HTMLTextAreaElement;
  const skipOverlap = input("skip-overlap", { type: "checkbox" });
  const createButton = h("button", { type: "submit" }, "Create schedule") as HTMLButtonElement;
  const form = h(
    "form",
    { class: "filters", "aria-label": "New schedule", onsubmit: (event: Event) => void create(event) },
    field("Id", idInput),
    field("Cron (UTC unless a time zone)", cronInput),
    field("Time zone", timezoneInput),
    field("Task type", typeInput),
    field("Priority", prioritySelect),
    field("Payload (JSON object)", payloadInput),
    h("label", { class: "inline" }, skipOverlap, " Skip a run while the previous one's task is unfinished"),
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
    let payload: JsonObject = {};
    const text = payloadInput.value.trim();
    if (text) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
        payload = parsed as JsonObject;
      } catch {
        status.textContent = 'Not created: the payload must be a JSON object, e.g. {"n": 1}.';
        announce(status.textContent);
        return;
      }
    }
    const id = idInput.value.trim();
    createButton.disabled = true;
    await act("Create", async () => {
      const { schedule } = await admin.createSchedule({
        schedule: {
          id,
          cron: cronInput.value.trim(),
          timezone: timezoneInput.value.trim(),
          overlap: skipOverlap.checked ? ScheduleOverlap.SKIP : ScheduleOverlap.ALLOW,
          task: {
            type: typeInput.value.trim(),
            priority: Priority[prioritySelect.value as keyof typeof Priority] ?? Priority.MEDIUM,
            payload,
          },
        },
      });
      form.reset();
      const next = dateOf(schedule?.nextRunAt);
      return `Created schedule ${id}${next ? `: first run ${formatTime(next)}` : ""}.`;
    });
    createButton.disabled = false;
  }

  async function load() {
    status.textContent = "Loading…";
    try {
      const { schedules } = await admin.listSchedules({});
      if (stopped) return;
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
        (schedule.overlap === ScheduleOverlap.SKIP ? ", skips overlaps" : ""),
      schedule.paused
        ? `paused${schedule.pausedBy ? ` by ${schedule.pausedBy}` : ""}`
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

  /** Runs an action on a schedule, then shows the list again with what happened (or why it failed). */
  async function act(what: string, call: () => Promise<string>) {
    try {
      const text = await call();
      announce(text);
      await load();
      status.textContent = text;
    } catch (error) {
      announce(`${what} failed: ${errorText(error)}`);
      status.textContent = `${what} failed: ${errorText(error)}`;
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
