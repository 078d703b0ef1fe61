import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

const INSTALL_HINTS: Record<string, string> = {
  "nats-server":
    "apt-get install -y nats-server   (Debian/Ubuntu; or see https://docs.nats.io/running-a-nats-service/introduction/installation)",
  "redis-server": "apt-get install -y redis-server   (Debian/Ubuntu)",
  openssl: "apt-get install -y openssl   (Debian/Ubuntu; for the TLS tests)",
};

/** Finds an executable on PATH (and the sbin directories Debian installs servers into). */
export function findBinary(name: string): string {
  const dirs = [
    ...(process.env.PATH ?? "").split(delimiter),
    "/usr/sbin",
    "/usr/local/sbin",
    "/sbin",
    "/usr/local/bin",
  ];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  const hint = INSTALL_HINTS[name] ?? `install ${name}`;
  throw new Error(`${name} was not found on PATH. Install it: ${hint} (or run scripts/setup.sh)`);
}
