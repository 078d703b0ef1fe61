/** Recurring schedules: each with its cron, time zone, task, next and last run (its task linked), and Delete after a
 *  confirmation. Creating one stays with taskctl (`taskctl schedule add`), where the template is typed out. */
import type { Schedule } from "@tm/proto/web";
import { admin, errorText } from "../api.js";
import { announce, h, replace } from "../dom.js";
import { dateOf, formatTime, priorityName, relative } from "../format.js";
import { table } from "./overview.js";
import type { View } from "./view.js";

export const schedulesView: View = (main) => {
  const status = h("p", { class: "muted", role: "status" });
  const list = h("div");
  let stopped = false;
  replace(
    main,
    h("h1", {}, "Schedules"),
    h("p", { class: "muted" }, 'Recurring tasks. Add one with taskctl schedule add <id> "<cron>" <type>.'),
    status,
    list,
  );

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
      `${schedule.task?.type ?? "?"} (${priorityName(schedule.task?.priority ?? 0)})`,
      schedule.paused
        ? `paused${schedule.pausedBy ? ` by ${schedule.pausedBy}` : ""}`
        : when(schedule.nextRunAt, now, "never"),
      when(schedule.lastRunAt, now, "—"),
      schedule.lastTaskId ? h("a", { href: `/tasks/${schedule.lastTaskId}`, class: "mono" }, schedule.lastTaskId) : "—",
      schedule.createdBy || "—",
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          "aria-label": `Delete ${schedule.id}`,
          onclick: () => void remove(schedule.id),
        },
        "Delete",
      ),
    ];
  }

  async function remove(id: string) {
    if (!window.confirm(`Delete schedule ${id}? Its tasks already submitted are not touched.`)) return;
    try {
      const { deleted } = await admin.deleteSchedule({ id });
      const text = deleted ? `Deleted schedule ${id}.` : `Schedule ${id} was already gone.`;
      announce(text);
      await load();
      status.textContent = text;
    } catch (error) {
      announce(`Delete failed: ${errorText(error)}`);
      status.textContent = `Delete failed: ${errorText(error)}`;
    }
  }

  void load();
  return () => {
    stopped = true;
  };
};
