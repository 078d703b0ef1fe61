/** One concurrency key (`/concurrency/<key>`, `?owner=<caller>` optional): how many of its tasks hold its places (in
 *  the pipeline) and how many wait PENDING for one, with the limit the next is admitted under, then both lists of
 *  task ids (the waiting in the order they get a place; the gateway lists 100 of each), each linked to its page;
 *  refreshed every 2 s. As `taskctl concurrency <key> [--owner]` (AdminService GetConcurrencyKey). Reached from a
 *  task's page, its Concurrency row. */
import { Code, ConnectError } from "@connectrpc/connect";
import type { GetConcurrencyKeyResponse } from "@tm/proto/web";
import { admin } from "../api.js";
import { h, replace } from "../dom.js";
import { refreshEvery } from "./refreshing.js";
import type { View } from "./view.js";

export const concurrencyKeyView: View = (main, { params, query }) => {
  const key = params.key ?? "";
  // Whose key (GetConcurrencyKeyRequest.owner) depends on the gateway: with GATEWAY_TASK_ISOLATION=caller each
  // caller's keys are its own and the owner is required; otherwise every caller shares each key and an owner is
  // refused. The console cannot tell which (console-config.json does not say), so `?owner=` is a hint (a task's page
  // passes its submitted_by): the view asks with it when given, and when the gateway refuses the request over the
  // owner (INVALID_ARGUMENT "owner: …": required where it was left out, refused where it was given) it asks once more
  // the other way and keeps that for the refreshes. Without a hint, "owner: is required" is shown as it is.
  const hint = query.get("owner") ?? "";
  let owner = hint;
  const whose = h("span", {});
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  const counts = h("p", { id: "concurrency-counts" });
  const body = h("div");
  replace(
    main,
    h("h1", {}, "Concurrency key ", h("span", { class: "mono" }, key), whose),
    counts,
    h(
      "p",
      { class: "muted" },
      "At most the limit of the key's tasks are in the pipeline at once (from their release into it to their end); " +
        "the others wait PENDING and are admitted as places free up, highest priority first, then oldest first.",
    ),
    status,
    body,
  );
  /** GetConcurrencyKey with the owner in use, then the other way once if the gateway refused it over the owner. */
  async function ask(): Promise<GetConcurrencyKeyResponse> {
    try {
      return await admin.getConcurrencyKey({ key, owner });
    } catch (error) {
      const refused = ConnectError.from(error);
      if (!hint || refused.code !== Code.InvalidArgument || !refused.rawMessage.startsWith("owner:")) throw error;
      owner = owner ? "" : hint;
      return await admin.getConcurrencyKey({ key, owner });
    }
  }

  function draw(view: GetConcurrencyKeyResponse) {
    replace(whose, owner ? h("span", { class: "muted" }, ` (owner ${owner})`) : null);
    counts.textContent = countsText(view);
    replace(
      body,
      h(
        "section",
        { "aria-label": "In the pipeline", id: "concurrency-running" },
        h("h2", {}, `In the pipeline (${view.runningTotal})`),
        taskList("ul", view.running, view.runningTotal, "No task of the key is in the pipeline."),
      ),
      h(
        "section",
        { "aria-label": "Waiting", id: "concurrency-waiting" },
        h("h2", {}, `Waiting, in the order they get a place (${view.waitingTotal})`),
        taskList("ol", view.waiting, view.waitingTotal, "No task of the key waits."),
      ),
    );
  }

  return refreshEvery(status, "the concurrency key", ask, draw);
};

/** "2 in the pipeline, 13 waiting; the next is admitted under a limit of 2", as `taskctl concurrency` says it. */
function countsText(view: GetConcurrencyKeyResponse): string {
  if (view.runningTotal === 0 && view.waitingTotal === 0) {
    return "No task in the pipeline, none waiting (a key is known only while it has tasks in either).";
  }
  const waiting =
    view.waitingTotal === 0
      ? "none waiting"
      : `${view.waitingTotal} waiting${view.nextLimit > 0 ? `; the next is admitted under a limit of ${view.nextLimit}` : ""}`;
  return `${view.runningTotal} in the pipeline, ${waiting}`;
}

/** The listed task ids, each linked to its page, and "… and N more" past those the gateway listed (100); the fairness
 *  queue's window lists its tasks alike. */
export function taskList(tag: "ul" | "ol", ids: readonly string[], total: number, none: string): HTMLElement {
  if (total === 0) return h("p", { class: "muted" }, none);
  const more = total - ids.length;
  return h(
    "div",
    {},
    h(tag, { class: "task-ids" }, ...ids.map((id) => h("li", {}, h("a", { href: `/tasks/${id}`, class: "mono" }, id)))),
    more > 0 ? h("p", { class: "muted" }, `… and ${more} more`) : null,
  );
}
