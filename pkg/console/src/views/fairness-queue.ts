/** One task type's fair share (`/fairness/<type>`): how many of the places in its fairness window its tasks take and
 *  how many keys have tasks waiting for their turn, then the window's task ids (each linked to its page) and the keys
 *  in the order they are served, with how many tasks each has waiting and its next start on the type's virtual clock
 *  (the gateway lists 100 of each); refreshed every 2 s. As `taskctl fairness <type>` (AdminService
 *  GetFairnessQueue). Reached from a task's page, its Fairness row. */
import type { GetFairnessQueueResponse } from "@tm/proto/web";
import { admin } from "../api.js";
import { h, replace } from "../dom.js";
import { taskList } from "./concurrency-key.js";
import { table } from "./overview.js";
import { refreshEvery } from "./refreshing.js";
import type { View } from "./view.js";

export const fairnessQueueView: View = (main, { params }) => {
  const taskType = params.type ?? "";
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  const counts = h("p", { id: "fairness-counts" });
  const body = h("div");
  replace(
    main,
    h("h1", {}, "Fairness queue ", h("span", { class: "mono" }, taskType)),
    counts,
    h(
      "p",
      { class: "muted" },
      "At most the window's tasks of the type with a fairness key are in the pipeline at once (from their release " +
        "into it to their end); the others wait PENDING, one line per key, and each place that frees goes to the key " +
        "whose turn it is: keys are served in proportion to their weights, whatever their backlogs. Tasks without a " +
        "key do not pass through the window.",
    ),
    status,
    body,
  );
  function draw(view: GetFairnessQueueResponse) {
    counts.textContent = countsText(view);
    replace(
      body,
      h(
        "section",
        { "aria-label": "In the window", id: "fairness-running" },
        h("h2", {}, `In the window (${view.runningTotal})`),
        taskList("ul", view.running, view.runningTotal, "No task of the type is in the window."),
      ),
      h(
        "section",
        { "aria-label": "Keys waiting", id: "fairness-keys" },
        h("h2", {}, `Keys waiting, the next served first (${view.keysTotal})`),
        keyTable(view),
      ),
    );
  }

  return refreshEvery(status, "the fairness queue", () => admin.getFairnessQueue({ taskType }), draw);
};

/** "2 of 32 places taken, 3 keys waiting", as `taskctl fairness` says it. The window is the answering gateway's
 *  (each task keeps the one it was submitted with), so more may be taken than it has after it was lowered. */
function countsText(view: GetFairnessQueueResponse): string {
  const keys =
    view.keysTotal === 0 ? "no key waiting" : `${view.keysTotal} key${view.keysTotal === 1 ? "" : "s"} waiting`;
  return `${view.runningTotal} of ${view.window} place${view.window === 1 ? "" : "s"} taken, ${keys}`;
}

/** The keys in the order they are served, "… and N more" past those the gateway listed (100), and what orders them:
 *  the next starts mean little without the clock they are measured on. */
function keyTable(view: GetFairnessQueueResponse): HTMLElement {
  if (view.keysTotal === 0) return h("p", { class: "muted" }, "No key has a task waiting for its turn.");
  const more = view.keysTotal - view.keys.length;
  return h(
    "div",
    {},
    table(
      ["Key", "Waiting", "Next start", "Weight"],
      // A key is shown whole (with GATEWAY_TASK_ISOLATION=caller, "caller:<submitter>:<key>"): it is what to look for.
      view.keys.map((key) => [
        h("span", { class: "mono" }, key.key),
        String(key.waitingTotal),
        virtualTime(key.nextStart),
        // The next task's (each carries its own).
        key.nextWeight > 0 ? String(key.nextWeight) : "—",
      ]),
    ),
    more > 0 ? h("p", { class: "muted" }, `… and ${more} more key${more === 1 ? "" : "s"}`) : null,
    h(
      "p",
      { class: "muted", id: "fairness-clock" },
      `The lowest next start is served first; each task let in moves its key's on by 1 / its weight ` +
        `(the type's clock: ${virtualTime(view.clock)}).`,
    ),
  );
}

/** A virtual time (a count of turns, fractions for weights above 1), to three decimals at most. */
function virtualTime(value: number): string {
  return String(Number(value.toFixed(3)));
}
