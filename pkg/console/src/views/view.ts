import type { ConsoleConfig } from "../api.js";

/** A view draws into `main` and returns what stops its timers and streams when the user navigates away. */
export type View = (main: HTMLElement, context: ViewContext) => () => void;

export interface ViewContext {
  config: ConsoleConfig;
  /** Path parameters (e.g. the task id) and the query string. */
  params: Record<string, string>;
  query: URLSearchParams;
  navigate(path: string): void;
}
