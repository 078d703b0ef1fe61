/**
 * The console's API: TaskService and AdminService over the Connect protocol (HTTP/1.1 + JSON) on the page's own
 * origin, the gateway's web port. When the gateway requires a key, every call carries `authorization: Bearer <key>`
 * with the key from sessionStorage; an UNAUTHENTICATED answer asks for the key again.
 */
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AdminService, TaskService } from "@tm/proto/web";

const KEY_STORAGE = "tm-console-api-key";

/** What the gateway tells the page at /console-config.json. */
export interface ConsoleConfig {
  grafanaUrl: string;
  authRequired: boolean;
  /** The task types the pipeline runs (built in and TASK_TYPES, from the gateway: no @tm/flow here). */
  taskTypes: string[];
}

export async function loadConfig(): Promise<ConsoleConfig> {
  const response = await fetch("/console-config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`/console-config.json answered ${response.status}`);
  return (await response.json()) as ConsoleConfig;
}

export function storedApiKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeApiKey(key: string): void {
  sessionStorage.setItem(KEY_STORAGE, key);
}

let onUnauthenticated: () => void = () => undefined;

/** What to do when the gateway refuses the key (or its absence): the key prompt. */
export function whenUnauthenticated(handler: () => void): void {
  onUnauthenticated = handler;
}

const authenticate: Interceptor = (next) => async (request) => {
  const key = storedApiKey();
  if (key) request.header.set("authorization", `Bearer ${key}`);
  try {
    return await next(request);
  } catch (error) {
    if (ConnectError.from(error).code === Code.Unauthenticated) onUnauthenticated();
    throw error;
  }
};

const transport = createConnectTransport({ baseUrl: window.location.origin, interceptors: [authenticate] });

export const tasks = createClient(TaskService, transport);
export const admin = createClient(AdminService, transport);

/** A call's error as one line for the page. */
export function errorText(error: unknown): string {
  const connectError = ConnectError.from(error);
  return `${Code[connectError.code] ?? "error"}: ${connectError.rawMessage}`;
}

export function isAbort(error: unknown): boolean {
  return ConnectError.from(error).code === Code.Canceled;
}
