/** Type limits: each task type's run-time limits (fleet-wide concurrency with the slots held now, start rate, pause;
 *  who set them and when) with Pause / Resume, Set limits (a dialog, prefilled) and Clear limits (after a
 *  confirmation) per type, and the types backing off because a handler's downstream said "wait" (RateLimitedError).
 *  As `taskctl limits ls|pause|resume|set|clear`. The gateway checks every value and names the one it refuses. */
import { durationMs } from "@bufbuild/protobuf/wkt";
import type { TypeLimit } from "@tm/proto/web";
import { admin, errorText } from "../api.js";
import { announce, h, replace } from "../dom.js";
import { dateOf, duration, formatTime } from "../format.js";
import { table } from "./overview.js";
import type { View } from "./view.js";

export const limitsView: View = (main, { config }) => {
  const status = h("p", { class: "muted", role: "status" });
  const list = h("div");
  const backoffs = h("div");
  let stopped = false;
  let dialog: HTMLDialogElement | undefined;
  replace(
    main,
    h("h1", {}, "Type limits"),
    h(
      "p",
      { class: "muted" },
      "Run-time limits per task type, applied by every worker within a second, in place of the workers' own " +
        "WORKER_TYPE_* settings for that type. A paused type's tasks wait, queued, spending no attempt.",
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
      // Every type the pipeline runs (the gateway's list: each can be paused before it has a limit), and any other
      // the gateway lists with limits.
      const types = [...new Set([...config.taskTypes, ...byType.keys()])];
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
    const rate = limit?.ratePerSecond ? rateText(limit) : "—";
    return [
      type,
      limit?.globalConcurrency ? `${limit.running} / ${limit.globalConcurrency}` : "—",
      rate,
      limit?.paused ? "paused" : "—",
      limit?.setBy || "—",
      limit?.setAt ? formatTime(dateOf(limit.setAt)) : "—",
      h(
        "span",
        { class: "row-actions" },
        limit?.paused
          ? button(`Resume ${type}`, "Resume", () => change(type, false))
          : button(`Pause ${type}`, "Pause", () => change(type, true)),
        button(`Set limits for ${type}`, "Set limits", async () => openSetDialog(type, limit)),
        limit && button(`Clear limits for ${type}`, "Clear limits", () => clear(type, limit)),
      ),
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
      say(text);
    } catch (error) {
      say(`${pause ? "Pause" : "Resume"} failed: ${errorText(error)}`);
    }
  }

  /** Shows an action's outcome in the status line and tells a screen reader. */
  function say(text: string) {
    status.textContent = text;
    announce(text);
  }

  /** The "Set limits" dialog: the type's limits now, prefilled; SetTypeLimit replaces them all on Save. */
  function openSetDialog(type: string, limit: TypeLimit | undefined) {
    closeDialog();
    const number = (name: string, value: number, attributes: Record<string, string> = {}) =>
      h("input", {
        id: `limit-${name}`,
        name,
        type: "number",
        min: "0",
        autocomplete: "off",
        value: value ? String(value) : "",
        ...attributes,
      }) as HTMLInputElement;
    const field = (control: HTMLElement, label: string) => [h("label", { for: control.id }, label), control];
    const rate = limit?.ratePerSecond ? rateParts(limit.ratePerSecond) : { value: 0, unit: "s" };
    const concurrencyInput = number("global-concurrency", limit?.globalConcurrency ?? 0, { step: "1" });
    const rateInput = number("rate", rate.value, { step: "any" });
    const unitSelect = h(
      "select",
      { id: "limit-rate-unit", name: "rate-unit" },
      ...Object.entries(RATE_UNITS).map(([unit, { label }]) =>
        h("option", { value: unit, selected: unit === rate.unit }, label),
      ),
    ) as HTMLSelectElement;
    const burstInput = number("rate-burst", limit?.ratePerSecond ? limit.rateBurst : 0, { step: "1" });
    const pausedBox = h("input", {
      type: "checkbox",
      name: "paused",
      checked: limit?.paused === true,
    }) as HTMLInputElement;
    let pausedChanged = false;
    pausedBox.addEventListener("change", () => {
      pausedChanged = true;
    });
    const problem = h("p", { role: "alert", class: "error" });
    const save = h("button", { type: "submit" }, "Save limits") as HTMLButtonElement;
    const form = h(
      "form",
      { "aria-label": `Limits for ${type}` },
      h("h2", { id: "limit-dialog-title" }, `Limits for ${type}`),
      h(
        "p",
        { class: "muted" },
        "Saving replaces the type's limits: a field left empty or 0 is no limit of that kind.",
      ),
      ...field(concurrencyInput, "Global concurrency (running at once across the fleet; 1 to 10000)"),
      ...field(rateInput, "Start rate (starts across the fleet)"),
      ...field(unitSelect, "Rate unit"),
      ...field(burstInput, "Burst (with a rate: starts at once after an idle spell; empty: 1)"),
      h("label", {}, pausedBox, " Paused (no worker starts one)"),
      problem,
      h(
        "div",
        { class: "actions" },
        save,
        h("button", { type: "button", class: "secondary", onclick: () => closeDialog() }, "Cancel"),
      ),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      save.disabled = true;
      void submit().finally(() => {
        save.disabled = false;
      });
    });
    const element = h("dialog", { "aria-labelledby": "limit-dialog-title" }, form) as HTMLDialogElement;
    // Closed by Cancel, Save or Escape: gone (the next one is drawn afresh with the limits then).
    element.addEventListener("close", () => element.remove());
    dialog = element;
    main.append(element);
    element.showModal();
    concurrencyInput.focus();

    async function submit() {
      const perUnit = rateInput.value === "" ? 0 : rateInput.valueAsNumber;
      try {
        const response = await admin.setTypeLimit({
          limit: {
            type,
            globalConcurrency: concurrencyInput.value === "" ? 0 : concurrencyInput.valueAsNumber,
            ratePerSecond: perUnit / (RATE_UNITS[unitSelect.value]?.seconds ?? 1),
            rateBurst: burstInput.value === "" ? 0 : burstInput.valueAsNumber,
            paused: pausedChanged && pausedBox.checked,
          },
          // Unless the box was changed, the pause stays as the type has it when saved (it may have been paused or
          // resumed since the dialog opened): the gateway keeps it in the same script.
          keepPause: !pausedChanged,
        });
        closeDialog();
        const text = `Set ${type}'s limits: ${describe(response.limit)}. Every worker applies them within a second.`;
        await load();
        say(text);
      } catch (error) {
        problem.textContent = `Not saved: ${errorText(error)}`;
        announce(problem.textContent);
      }
    }
  }

  function closeDialog() {
    if (dialog?.open) dialog.close();
    dialog?.remove();
    dialog = undefined;
  }

  // Clearing also lifts a pause and brings the workers' own settings back: asked first.
  async function clear(type: string, limit: TypeLimit) {
    const question =
      `Clear ${type}'s limits (${describe(limit)})? ` +
      `${limit.paused ? "It is resumed, and the" : "The"} workers' own WORKER_TYPE_* settings apply to it again.`;
    if (!window.confirm(question)) return;
    try {
      const { cleared } = await admin.clearTypeLimit({ type });
      const text = cleared ? `Cleared ${type}'s limits: the workers' own settings apply.` : `${type} had no limits.`;
      await load();
      say(text);
    } catch (error) {
      say(`Clear failed: ${errorText(error)}`);
    }
  }

  void load();
  // The running counts and back-offs move: read them again every few seconds while the page is open.
  const timer = setInterval(() => void load(), 5_000);
  return () => {
    stopped = true;
    clearInterval(timer);
    closeDialog();
  };
};

/** The units a start rate is given in (`taskctl limits set --rate N/s|N/m|N/h`); the gateway stores per second. */
const RATE_UNITS: Record<string, { seconds: number; label: string; short: string }> = {
  s: { seconds: 1, label: "per second", short: "s" },
  m: { seconds: 60, label: "per minute", short: "min" },
  h: { seconds: 3_600, label: "per hour", short: "h" },
};

/** A rate per second in the first unit that makes it a whole number (0.5/s: 30/min), else per second. */
function rateParts(perSecond: number): { value: number; unit: string } {
  for (const [unit, { seconds }] of Object.entries(RATE_UNITS)) {
    const value = perSecond * seconds;
    if (Math.round(value) >= 1 && Math.abs(value - Math.round(value)) < 1e-9 * value) {
      return { value: Math.round(value), unit };
    }
  }
  return { value: perSecond, unit: "s" };
}

/** "2/s", "30/min (burst 5)". */
function rateText(limit: Pick<TypeLimit, "ratePerSecond" | "rateBurst">): string {
  const { value, unit } = rateParts(limit.ratePerSecond);
  return `${Number(value.toPrecision(6))}/${RATE_UNITS[unit]?.short ?? unit}${limit.rateBurst > 1 ? ` (burst ${limit.rateBurst})` : ""}`;
}

/** "at most 4 running, 2/s (burst 5), paused"; "none" for an unset limit. */
function describe(limit: TypeLimit | undefined): string {
  const parts = [
    ...(limit?.globalConcurrency ? [`at most ${limit.globalConcurrency} running`] : []),
    ...(limit?.ratePerSecond ? [rateText(limit)] : []),
    ...(limit?.paused ? ["paused"] : []),
  ];
  return parts.length > 0 ? parts.join(", ") : "none";
}
