/** Type limits: each task type's run-time limits (fleet-wide concurrency with the slots held now, start rate, pause;
 *  who set them and when) with Pause / Resume per type, and the types backing off because a handler's downstream said
 *  "wait" (RateLimitedError). As `taskctl limits ls|pause|resume`; setting concurrency or rate stays with
 *  `taskctl limits set`. */
import { durationMs } from "@bufbuild/protobuf/wkt";
import type { TypeLimit } from "@tm/proto/web";
import { admin, errorText } from "../api.js";
import { announce, h, replace } from "../dom.js";
import { dateOf, duration, formatTime } from "../format.js";
import { table } from "./overview.js";
import type { View } from "./view.js";

/** The types the workers run (@tm/flow's KNOWN_TASK_TYPES, which this browser bundle cannot import): each can be
 *  paused here before it has a limit; a type the gateway lists with limits is shown too. */
const TASK_TYPES = ["echo", "sleep", "checksum", "flaky", "fail"];

export const limitsView: View = (main) => {
  const status = h("p", { class: "muted", role: "status" });
  const list = h("div");
  const backoffs = h("div");
  let stopped = false;
  replace(
    main,
    h("h1", {}, "Type limits"),
    h(
      "p",
      { class: "muted" },
      "Run-time limits per task type, applied by every worker within a second. A paused type's tasks wait, queued, " +
        "spending no attempt. Set a concurrency or rate with taskctl limits set.",
    ),
    status,
    list,
    backoffs,
  );

  async function load() {
    try {
      const response = await admin.listTypeLimits({});
      if (stopped) return;
      const byType = new Map(response.limits.map((limit) => [limit.type, limit]));
      const types = [...new Set([...TASK_TYPES, ...byType.keys()])];
      replace(
        list,
        table(
          ["Type", "Running / global", "Rate", "Paused", "Set by", "Set at", "Action"],
          types.map((type) => row(type, byType.get(type))),
        ),
      );
      replace(
        backoffs,
        response.backoffs.length === 0
          ? ""
          : h(
              "section",
              { "aria-label": "Backing off" },
              h("h2", {}, "Backing off (rate limited by a downstream)"),
              table(
                ["Type", "Left", "Told to"],
                response.backoffs.map((backoff) => [
                  backoff.type,
                  backoff.remaining ? duration(durationMs(backoff.remaining)) : "—",
                  backoff.setBy || "a worker",
                ]),
              ),
            ),
      );
    } catch (error) {
      if (!stopped) status.textContent = `Could not list the type limits: ${errorText(error)}`;
    }
  }

  function row(type: string, limit: TypeLimit | undefined): (string | Node)[] {
    const rate = limit?.ratePerSecond
      ? `${limit.ratePerSecond}/s${limit.rateBurst > 1 ? ` (burst ${limit.rateBurst})` : ""}`
      : "—";
    return [
      type,
      limit?.globalConcurrency ? `${limit.running} / ${limit.globalConcurrency}` : "—",
      rate,
      limit?.paused ? "paused" : "—",
      limit?.setBy || "—",
      limit?.setAt ? formatTime(dateOf(limit.setAt)) : "—",
      limit?.paused
        ? button(`Resume ${type}`, "Resume", () => change(type, false))
        : button(`Pause ${type}`, "Pause", () => change(type, true)),
    ];
  }

  function button(label: string, text: string, act: () => Promise<void>): HTMLElement {
    return h("button", { type: "button", class: "secondary", "aria-label": label, onclick: () => void act() }, text);
  }

  // A pause is undone by Resume at any time and touches no task: no confirmation.
  async function change(type: string, pause: boolean) {
    try {
      const text = pause
        ? (await admin.pauseType({ type })).wasPaused
          ? `${type} was paused already.`
          : `Paused ${type}: no worker starts one until it is resumed.`
        : (await admin.resumeType({ type })).wasPaused
          ? `Resumed ${type}.`
          : `${type} was not paused.`;
      await load();
      status.textContent = text;
      announce(text);
    } catch (error) {
      status.textContent = `${pause ? "Pause" : "Resume"} failed: ${errorText(error)}`;
      announce(status.textContent);
    }
  }

  void load();
  // The running counts and back-offs move: read them again every few seconds while the page is open.
  const timer = setInterval(() => void load(), 5_000);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
};
