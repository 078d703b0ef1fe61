/** Starts the console: reads /console-config.json, then routes the URL to a view (client-side routing). */
import { type ConsoleConfig, loadConfig, storedApiKey, whenUnauthenticated } from "./api.js";
import { askForApiKey } from "./auth-prompt.js";
import { h, replace } from "./dom.js";
import { concurrencyKeyView } from "./views/concurrency-key.js";
import { deadLettersView } from "./views/dead-letters.js";
import { fairnessQueueView } from "./views/fairness-queue.js";
import { limitsView } from "./views/limits.js";
import { newTaskView } from "./views/new-task.js";
import { overviewView } from "./views/overview.js";
import { schedulesView } from "./views/schedules.js";
import { taskDetailView } from "./views/task-detail.js";
import { tasksView } from "./views/tasks.js";
import type { View } from "./views/view.js";

const ROUTES: { pattern: RegExp; nav: string; view: View; title: string }[] = [
  { pattern: /^\/$/, nav: "overview", view: overviewView, title: "Overview" },
  { pattern: /^\/tasks\/?$/, nav: "tasks", view: tasksView, title: "Tasks" },
  { pattern: /^\/tasks\/new\/?$/, nav: "tasks", view: newTaskView, title: "New task" },
  { pattern: /^\/tasks\/(?<id>[^/]+)$/, nav: "tasks", view: taskDetailView, title: "Task" },
  { pattern: /^\/dead-letters\/?$/, nav: "dead-letters", view: deadLettersView, title: "Dead letters" },
  { pattern: /^\/schedules\/?$/, nav: "schedules", view: schedulesView, title: "Schedules" },
  { pattern: /^\/limits\/?$/, nav: "limits", view: limitsView, title: "Type limits" },
  // One key (encodeURIComponent'd: a key may hold "/"), reached from a task's page; no nav entry (no list of keys).
  { pattern: /^\/concurrency\/(?<key>[^/]+)$/, nav: "", view: concurrencyKeyView, title: "Concurrency key" },
  // One task type's fair share, reached from the Fairness row of a task's page; no nav entry either.
  { pattern: /^\/fairness\/(?<type>[^/]+)$/, nav: "", view: fairnessQueueView, title: "Fairness queue" },
];

const main = document.getElementById("main") as HTMLElement;
let dispose: () => void = () => undefined;
let config: ConsoleConfig;

function render(): void {
  dispose();
  const path = window.location.pathname;
  const route = ROUTES.find((candidate) => candidate.pattern.test(path));
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a[data-nav]")) {
    if (route?.nav === link.dataset.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!route) {
    replace(main, h("h1", {}, "Not found"), h("p", {}, "No page here. "), h("a", { href: "/" }, "Go to the overview"));
    dispose = () => undefined;
    return;
  }
  document.title = `${route.title} · Task Manager console`;
  const params = { ...(path.match(route.pattern)?.groups ?? {}) };
  for (const [key, value] of Object.entries(params)) params[key] = decodeURIComponent(value);
  dispose = route.view(main, { config, params, query: new URLSearchParams(window.location.search), navigate });
}

function navigate(path: string): void {
  history.pushState(null, "", path);
  render();
  main.focus();
}

// Same-origin links are handled here (a click or Enter on a link), so views stay client-side.
document.addEventListener("click", (event) => {
  const link = (event.target as Element).closest?.("a");
  if (!link || link.target || link.origin !== window.location.origin || event.defaultPrevented) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || (event as MouseEvent).button !== 0) return;
  event.preventDefault();
  navigate(link.pathname + link.search);
});
window.addEventListener("popstate", render);

async function start(): Promise<void> {
  try {
    config = await loadConfig();
  } catch (error) {
    replace(main, h("p", { class: "error" }, `Could not load the console configuration: ${(error as Error).message}`));
    return;
  }
  const keyButton = document.getElementById("api-key-button") as HTMLButtonElement;
  const prompt = (reason: string) => askForApiKey(reason, render);
  whenUnauthenticated(() => prompt("The gateway refused the request: enter a valid API key."));
  if (config.authRequired) {
    keyButton.hidden = false;
    keyButton.addEventListener("click", () => prompt("Enter the API key to use for this browser tab."));
    if (!storedApiKey()) {
      prompt("The gateway requires an API key.");
      return;
    }
  }
  render();
}

void start();
