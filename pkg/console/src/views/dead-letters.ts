/** Dead letters: reason, error, attempts and history of each, with Replay per row, "Replay selected" and "Discard
 *  selected" (after a confirmation: a discarded letter cannot be replayed). `?parent=<id>` (a parent task's page links
 *  here) and `?type=<type>` show only the letters of that task's children, of that type, with "Replay all matching". */
import type { DeadLetterEntry } from "@tm/proto/web";
import { DiscardResult, ReplayResult } from "@tm/proto/web";
import { admin, errorText } from "../api.js";
import { announce, h, replace } from "../dom.js";
import { ago, dateOf, formatTime } from "../format.js";
import { table } from "./overview.js";
import type { View } from "./view.js";

const PAGE_SIZE = 50;

export const deadLettersView: View = (main, { query }) => {
  const filter = {
    ...(query.get("parent") ? { parentTaskId: query.get("parent") ?? "" } : {}),
    ...(query.get("type") ? { type: query.get("type") ?? "" } : {}),
  };
  const filtered = Object.keys(filter).length > 0;
  const status = h("p", { class: "muted", role: "status" });
  const list = h("div");
  const replaySelected = h("button", { type: "button" }, "Replay selected") as HTMLButtonElement;
  const discardSelected = h("button", { type: "button", class: "secondary" }, "Discard selected") as HTMLButtonElement;
  const next = h("button", { type: "button", class: "secondary" }, "Next page") as HTMLButtonElement;
  const selected = new Set<string>();
  let nextToken = "";
  let stopped = false;
  const replayAll = h("button", { type: "button" }, "Replay all matching") as HTMLButtonElement;
  replayAll.hidden = !filtered;
  const scope = filtered
    ? h(
        "p",
        { id: "dead-letter-filter" },
        "Only the letters ",
        ...(filter.parentTaskId
          ? [
              "of the child tasks of ",
              h("a", { href: `/tasks/${filter.parentTaskId}`, class: "mono" }, filter.parentTaskId),
            ]
          : []),
        ...(filter.parentTaskId && filter.type ? [" "] : []),
        ...(filter.type ? [`of type ${filter.type}`] : []),
        " (",
        h("a", { href: "/dead-letters" }, "show all"),
        ")",
      )
    : "";
  replace(
    main,
    h("h1", {}, "Dead letters"),
    scope,
    h("div", { class: "actions" }, replaySelected, discardSelected, replayAll),
    status,
    list,
    h("div", { class: "pager" }, next),
  );

  async function load(pageToken: string) {
    status.textContent = "Loading…";
    try {
      const response = await admin.listDeadLetters({ pageSize: PAGE_SIZE, pageToken, filter });
      if (stopped) return;
      nextToken = response.nextPageToken;
      next.disabled = !nextToken;
      selected.clear();
      updateSelection();
      const now = Date.now();
      replace(
        list,
        response.deadLetters.length === 0
          ? h("p", {}, "No dead letters.")
          : table(
              ["Select", "Task", "Subject", "Reason", "Error", "Attempts", "When", "History", "Action"],
              response.deadLetters.map((letter) => row(letter, now)),
            ),
      );
      status.textContent = `${response.deadLetters.length} dead letter${response.deadLetters.length === 1 ? "" : "s"} shown.`;
    } catch (error) {
      if (!stopped) status.textContent = `Could not list dead letters: ${errorText(error)}`;
    }
  }

  function row(letter: DeadLetterEntry, now: number): (string | Node)[] {
    const checkbox = h("input", { type: "checkbox", id: `select-${letter.id}`, value: letter.id }) as HTMLInputElement;
    checkbox.addEventListener("change", () => {
      if (checkbox.checked) selected.add(letter.id);
      else selected.delete(letter.id);
      updateSelection();
    });
    const label = letter.taskId || letter.id;
    return [
      h("span", {}, checkbox, h("label", { for: `select-${letter.id}`, class: "visually-hidden" }, `Select ${label}`)),
      letter.taskId
        ? h("a", { href: `/tasks/${letter.taskId}`, class: "mono" }, letter.taskId)
        : h("span", { class: "mono" }, letter.id),
      letter.subject,
      letter.reason,
      h("span", { class: "error" }, letter.error),
      String(letter.attempts),
      h(
        "time",
        { datetime: dateOf(letter.at)?.toISOString() ?? "", title: formatTime(dateOf(letter.at)) },
        ago(dateOf(letter.at), now),
      ),
      letter.history.length === 0
        ? "—"
        : h(
            "details",
            {},
            h("summary", {}, `${letter.history.length} events`),
            h(
              "ol",
              {},
              ...letter.history.map((event) =>
                h("li", {}, `${formatTime(dateOf(event.at))} ${event.service}: ${event.action}`),
              ),
            ),
          ),
      h(
        "button",
        { type: "button", "aria-label": `Replay ${label}`, onclick: () => void replay([letter.id]) },
        "Replay",
      ),
    ];
  }

  function updateSelection() {
    replaySelected.disabled = selected.size === 0;
    replaySelected.textContent = `Replay selected (${selected.size})`;
    discardSelected.disabled = selected.size === 0;
    discardSelected.textContent = `Discard selected (${selected.size})`;
  }

  /** Replays `ids`, or with `"all"` every letter the page's filter matches (500 a call; the text says if more remain). */
  async function replay(ids: string[] | "all") {
    try {
      const { outcomes, more } = await admin.replayDeadLetters(ids === "all" ? { all: true, filter } : { ids });
      const replayed = outcomes.filter((outcome) => outcome.result === ReplayResult.REPLAYED).length;
      // Replayed, but its queueing waits for NATS: the requeue sweeper does it.
      const pending = outcomes.filter((outcome) => outcome.queuePending).length;
      const refused = outcomes
        .filter((outcome) => outcome.result !== ReplayResult.REPLAYED)
        .map((outcome) => `${outcome.taskId || outcome.id}: ${outcome.reason || ReplayResult[outcome.result]}`);
      const queuedLater = pending > 0 ? ` ${pending} of them queued by the requeue sweeper once NATS answers.` : "";
      // The tasks their failures had cancelled (depends_on), waiting for them again.
      const revived = outcomes.reduce((sum, outcome) => sum + outcome.revivedDependents.length, 0);
      const revivedText =
        revived > 0 ? ` Revived ${revived} task${revived === 1 ? "" : "s"} their failures had cancelled.` : "";
      const moreText = more ? " More remain: replay all matching again." : "";
      const text = `Replayed ${replayed} of ${outcomes.length}.${queuedLater}${revivedText}${moreText}${refused.length > 0 ? ` Not replayed: ${refused.join("; ")}` : ""}`;
      announce(text);
      await load("");
      status.textContent = text;
    } catch (error) {
      announce(`Replay failed: ${errorText(error)}`);
      status.textContent = `Replay failed: ${errorText(error)}`;
    }
  }

  async function discard(ids: string[]) {
    const count = `${ids.length} dead letter${ids.length === 1 ? "" : "s"}`;
    if (!window.confirm(`Discard ${count}? Their tasks stay FAILED and can no longer be replayed.`)) return;
    try {
      const { outcomes } = await admin.discardDeadLetters({ ids });
      const discarded = outcomes.filter((outcome) => outcome.result === DiscardResult.DISCARDED).length;
      const kept = outcomes
        .filter((outcome) => outcome.result !== DiscardResult.DISCARDED)
        .map((outcome) => `${outcome.taskId || outcome.id}: ${outcome.reason || DiscardResult[outcome.result]}`);
      const text = `Discarded ${discarded} of ${outcomes.length}.${kept.length > 0 ? ` Not discarded: ${kept.join("; ")}` : ""}`;
      announce(text);
      await load("");
      status.textContent = text;
    } catch (error) {
      announce(`Discard failed: ${errorText(error)}`);
      status.textContent = `Discard failed: ${errorText(error)}`;
    }
  }

  replaySelected.addEventListener("click", () => void replay([...selected]));
  replayAll.addEventListener("click", () => void replay("all"));
  discardSelected.addEventListener("click", () => void discard([...selected]));
  next.addEventListener("click", () => void load(nextToken));
  void load("");
  return () => {
    stopped = true;
  };
};
