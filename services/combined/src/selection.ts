/**
 * Which services run in this process, and the environment each one sees. Pure, so it is unit-tested.
 *
 *   TM_SERVICES=scheduler,result-store,notifier,audit,deadletter
 *
 * Every service reads the process's environment, plus its own overrides: a variable `<SERVICE>__<NAME>` (the service
 * name upper-cased, `-` as `_`) is `<NAME>` for that service only, e.g. `NOTIFIER__OPS_PORT=9086` or
 * `AUDIT__LOG_LEVEL=debug`. Overrides are removed from every service's view. The services' default ports differ, so
 * several run side by side with none set; a bare `OPS_PORT` or `PORT` would send several servers to one port and is
 * refused when more than one service runs.
 */

export const COMBINABLE_SERVICES = [
  "gateway",
  "enricher",
  "ingest",
  "scheduler",
  "worker",
  "result-store",
  "notifier",
  "audit",
  "deadletter",
] as const;

export type CombinableService = (typeof COMBINABLE_SERVICES)[number];

export class SelectionError extends Error {
  override readonly name = "SelectionError";
}

const OVERRIDE = /^([A-Z][A-Z0-9_]*?)__([A-Z][A-Z0-9_]*)$/;
const SHARED_PORTS = ["OPS_PORT", "PORT"] as const;

export function envPrefixOf(service: CombinableService): string {
  return `${service.toUpperCase().replaceAll("-", "_")}__`;
}

/** Parses TM_SERVICES: known names, at least one, none twice; in the order given (the order they start in). */
export function parseServiceList(value: string | undefined): CombinableService[] {
  const known = COMBINABLE_SERVICES.join(", ");
  if (!value?.trim()) throw new SelectionError(`TM_SERVICES is required: a comma-separated list of ${known}`);
  const names = value.split(",").map((part) => part.trim());
  const unknown = names.filter((name) => !(COMBINABLE_SERVICES as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new SelectionError(
      `TM_SERVICES: unknown service ${unknown.map((n) => `"${n}"`).join(", ")} (known: ${known})`,
    );
  }
  const repeated = names.filter((name, index) => names.indexOf(name) !== index);
  if (repeated.length > 0) throw new SelectionError(`TM_SERVICES: "${repeated[0]}" is listed twice`);
  return names as CombinableService[];
}

/** The environment one service of the selection sees (see the module comment). */
export function serviceEnv(
  service: CombinableService,
  selection: readonly CombinableService[],
  env: NodeJS.ProcessEnv,
): NodeJS.ProcessEnv {
  const prefixes = new Set(COMBINABLE_SERVICES.map(envPrefixOf));
  const own = envPrefixOf(service);
  const shared: NodeJS.ProcessEnv = {};
  const overrides: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    const match = OVERRIDE.exec(name);
    if (match && prefixes.has(`${match[1]}__`)) {
      if (`${match[1]}__` === own) overrides[match[2] as string] = value;
      continue;
    }
    shared[name] = value;
  }
  if (selection.length > 1) {
    for (const name of SHARED_PORTS) {
      if (shared[name]) {
        throw new SelectionError(
          `${name} would give ${selection.length} services one port: set it per service instead, e.g. ${own}${name}`,
        );
      }
    }
  }
  return { ...shared, ...overrides };
}
