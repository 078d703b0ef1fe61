/**
 * The deployment files (docker-compose.yml, k8s/ rendered by kustomize, envoy/envoy.yaml, Dockerfile) checked
 * against the code: the services that exist, the variables their config schemas read, their ports and probes,
 * the NATS users, and the k8s copies of the config files.
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TaskService } from "@tm/proto";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { loadPermissions, passwordVariable } from "../configs/nats/render.mjs";
import { staleCopies } from "../k8s/sync-configs.mjs";
import {
  configErrorOf,
  type K8sObject,
  kubectlAvailable,
  parseYamlDocuments,
  readYaml,
  renderKustomize,
  requiredVariablesOf,
  type ServiceShape,
  variablesOf,
} from "../pkg/deploycheck/src/index.js";
import { EXTERNAL } from "../scripts/bundle.mjs";
import { COMBINABLE_SERVICES } from "../services/combined/src/selection.js";
import { parseGatewayKeyFile } from "../services/worker/src/gateway-api-key.js";

interface Definition extends ServiceShape {
  needs?: { nats?: boolean; redis?: boolean };
}

/** The server services: every directory under services/ with a service definition (the client is a CLI). */
const serviceNames = readdirSync("services").filter((name) => existsSync(`services/${name}/src/service.ts`));
const definitions = new Map<string, Definition>();
for (const name of serviceNames) {
  const module = (await import(`../services/${name}/src/service.ts`)) as Record<string, unknown>;
  const definition = Object.values(module).find(
    (value): value is Definition => typeof value === "object" && value !== null && (value as Definition).name === name,
  );
  if (!definition) throw new Error(`services/${name}/src/service.ts exports no definition named "${name}"`);
  definitions.set(name, definition);
}
const usesNats = (d: Definition) => d.needs?.nats ?? true;
const usesRedis = (d: Definition) => d.needs?.redis ?? true;

/** The port serving /healthz and /readyz: OPS_PORT's default, or the API port (PORT) for opsPort "api". */
function opsPortOf(definition: Definition): number {
  if (definition.opsPort !== "api") return definition.opsPort;
  const port = definition.config?.PORT as { parse(v: unknown): number } | undefined;
  if (!port) throw new Error(`${definition.name} serves ops routes on its API but declares no PORT`);
  return port.parse(undefined);
}
/** A service's setting as its config reads it from `env`: its default when unset. */
function settingOf(name: string, variable: string, env: Record<string, string | undefined>): unknown {
  const schema = definitions.get(name)?.config?.[variable] as { parse(v: unknown): unknown } | undefined;
  if (!schema) throw new Error(`${name} has no setting ${variable}`);
  return schema.parse(env[variable]);
}
/** The workers' child-task batches fit what the gateway takes in one SubmitTasks call (or every ctx.submitTasks of
 *  more children than its burst would be refused). */
function expectChildBatchesFit(
  workerEnv: Record<string, string | undefined>,
  gatewayEnv: Record<string, string | undefined>,
) {
  const batch = settingOf("worker", "WORKER_CHILD_BATCH_SIZE", workerEnv) as number;
  expect(batch).toBeLessThanOrEqual(settingOf("gateway", "GATEWAY_MAX_BATCH_TASKS", gatewayEnv) as number);
  const perSecond = settingOf("gateway", "GATEWAY_RATE_LIMIT_PER_SEC", gatewayEnv) as number;
  if (perSecond > 0)
    expect(batch).toBeLessThanOrEqual(settingOf("gateway", "GATEWAY_RATE_LIMIT_BURST", gatewayEnv) as number);
}
const opsPortVariable = (definition: Definition) => (definition.opsPort === "api" ? "PORT" : "OPS_PORT");
const GATEWAY_GRPC_PORT = 50052;
/** How every service is run, everywhere: package.json's start script (which `pnpm start` and the test kit run),
 *  the image's CMD and the k8s container args. */
const SERVICE_COMMAND = [
  "node",
  "--max-semi-space-size=2",
  "--heap-growing-percent=20",
  "--import",
  "@tm/kit/telemetry",
  "dist/bundle/index.js",
];
/** The gateway's web port (console + Connect/gRPC-Web) as its config defaults it: nothing overrides it when deployed. */
const GATEWAY_WEB_PORT = (
  definitions.get("gateway")!.config!.GATEWAY_WEB_PORT as unknown as { parse(v: unknown): number }
).parse(undefined);
const natsUsers = Object.keys((loadPermissions() as { users: Record<string, unknown> }).users);

test("there are server services to check, the client is not one of them", () => {
  expect(serviceNames.length).toBeGreaterThanOrEqual(9);
  expect(serviceNames).not.toContain("client");
});

// ------------------------------------------------------------------------------------------------ compose
interface ComposeService {
  build?: { context: string; args: Record<string, string> };
  image?: string;
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] };
  deploy?: { replicas?: number };
  command?: string[];
}
const compose = readYaml<{ services: Record<string, ComposeService> }>("docker-compose.yml");

/** Compose's `${VAR:-default}` as the value a `docker compose up` without a .env file would use. */
const interpolate = (value: string) => String(value).replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, "$1");
const composeEnv = (name: string) =>
  Object.fromEntries(Object.entries(compose.services[name]?.environment ?? {}).map(([k, v]) => [k, interpolate(v)]));

describe("docker-compose.yml", () => {
  test.each(serviceNames)("%s is built from its own directory", (name) => {
    const service = compose.services[name];
    expect(service, `compose has no service ${name}`).toBeDefined();
    expect(service?.build?.args.SERVICE).toBe(name);
    expect(service?.build?.context).toBe(".");
    expect(service?.image).toMatch(new RegExp(`^task-manager/${name}:`)); // the name k8s deploys
  });

  test.each(serviceNames)("%s gets an environment its config accepts, with every variable it reads", (name) => {
    const definition = definitions.get(name)!;
    const env = composeEnv(name);
    expect(configErrorOf(definition, env)).toBeUndefined();
    for (const variable of ["NATS_URL", "REDIS_URL", "OTEL_SERVICE_NAME", ...requiredVariablesOf(definition)]) {
      expect(env, `${name}: ${variable}`).toHaveProperty(variable);
    }
    // Every variable set is one the service reads: a misspelt name would be silently ignored.
    for (const variable of Object.keys(env))
      expect(variablesOf(definition), `${name}: ${variable}`).toContain(variable);
    expect(env.OTEL_SERVICE_NAME).toBe(name);
  });

  test.each(serviceNames)("%s: health check on its ops port's /readyz", (name) => {
    const definition = definitions.get(name)!;
    const env = composeEnv(name);
    const port = opsPortOf(definition);
    expect(env[opsPortVariable(definition)]).toBe(String(port));
    expect(compose.services[name]?.healthcheck?.test.join(" ")).toContain(`127.0.0.1:${port}/readyz`);
  });

  test.each(serviceNames)("%s waits for what it uses, and connects to NATS as its own user", (name) => {
    const definition = definitions.get(name)!;
    const dependsOn = compose.services[name]?.depends_on as Record<string, { condition: string }>;
    if (usesNats(definition)) expect(dependsOn.nats).toEqual({ condition: "service_healthy" });
    if (usesRedis(definition)) expect(dependsOn.redis).toEqual({ condition: "service_healthy" });
    if (!usesNats(definition)) return;
    expect(composeEnv(name).NATS_USER).toBe(name);
    expect(natsUsers).toContain(name);
    // The service and nats-server read the same variable, so the two cannot disagree.
    const variable = passwordVariable(name);
    expect(compose.services[name]?.environment?.NATS_PASSWORD).toContain(`\${${variable}:-`);
    expect(compose.services.nats?.environment?.[variable]).toBe(compose.services[name]?.environment?.NATS_PASSWORD);
  });

  test("the gateway authenticates callers (GATEWAY_AUTH_MODE=none is for local development only)", () => {
    expect(["api-key", "jwt"]).toContain(composeEnv("gateway").GATEWAY_AUTH_MODE);
  });

  /** The callers of the gateway's default API keys (composeEnv has the defaults in place of the variables). */
  const composeKeys = () =>
    new Map(
      (composeEnv("gateway").GATEWAY_API_KEYS ?? "").split(",").map((pair) => {
        const [caller = "", key = ""] = pair.split(":");
        return [caller, key];
      }),
    );

  test("the gateway names its operators, a caller of its default key (or taskctl and the console are refused)", () => {
    const admins = (composeEnv("gateway").GATEWAY_ADMIN_CALLERS ?? "").split(",").filter(Boolean);
    expect(admins.length).toBeGreaterThan(0);
    for (const admin of admins) expect([...composeKeys().keys()]).toContain(admin);
  });

  test("the workers submit child tasks through Envoy with a default key of a caller the gateway takes as a child submitter, in batches it takes", () => {
    const worker = composeEnv("worker");
    const url = new URL(worker.WORKER_GATEWAY_URL!);
    expect(url.hostname).toBe("envoy");
    expect(JSON.stringify(compose.services.envoy)).toContain(`"${url.port}:${url.port}"`);
    const caller = [...composeKeys()].find(([, key]) => key === worker.WORKER_GATEWAY_API_KEY)?.[0];
    expect(caller, "the workers' key is one of the gateway's").toBeDefined();
    expect((composeEnv("gateway").GATEWAY_CHILD_SUBMITTERS ?? "").split(",")).toContain(caller);
    // An operator key would let every handler use the AdminService.
    expect((composeEnv("gateway").GATEWAY_ADMIN_CALLERS ?? "").split(",")).not.toContain(caller);
    expectChildBatchesFit(worker, composeEnv("gateway"));
  });

  test("ingest waits for the enricher and reaches it on its port", () => {
    const dependsOn = compose.services.ingest?.depends_on as Record<string, { condition: string }>;
    expect(dependsOn.enricher).toEqual({ condition: "service_healthy" });
    const url = new URL(composeEnv("ingest").ENRICHER_URL!);
    expect(compose.services[url.hostname]).toBeDefined();
    expect(Number(url.port)).toBe(opsPortOf(definitions.get(url.hostname)!));
  });

  test("the gateway serves gRPC on the port Envoy forwards to, and Envoy publishes 50051", () => {
    expect(composeEnv("gateway").GRPC_PORT).toBe(String(GATEWAY_GRPC_PORT));
    expect(compose.services.envoy?.command).toContain("/etc/envoy/envoy.yaml");
    expect(JSON.stringify(compose.services.envoy)).toContain("./envoy/envoy.yaml:/etc/envoy/envoy.yaml");
    expect(JSON.stringify(compose.services.envoy)).toContain('"50051:50051"');
  });

  test("the web console is published by Envoy (the gateway has replicas, so not by the gateway itself)", () => {
    expect(composeEnv("gateway").GATEWAY_WEB_PORT).toBeUndefined();
    expect(JSON.stringify(compose.services.envoy)).toContain(`"${GATEWAY_WEB_PORT}:${GATEWAY_WEB_PORT}"`);
    expect(JSON.stringify(compose.services.gateway)).not.toContain('"ports"');
  });

  test("NATS runs with the project's config, JetStream and its monitoring health check; Redis with AOF", () => {
    expect(compose.services.nats?.command).toEqual(["-js", "-m", "8222", "-c", "/etc/nats/nats.conf"]);
    expect(compose.services.nats?.healthcheck?.test.join(" ")).toContain("localhost:8222/healthz?js-enabled-only=true");
    expect(compose.services.redis?.command).toContain("--appendonly");
    for (const user of natsUsers) expect(compose.services.nats?.environment).toHaveProperty(passwordVariable(user));
  });

  test("every config file the observability containers mount exists", () => {
    const mounts = Object.values(compose.services)
      .flatMap((s) => ((s as { volumes?: string[] }).volumes ?? []).map(String))
      .filter((v) => v.startsWith("./"))
      .map((v) => v.split(":")[0]!);
    expect(mounts.length).toBeGreaterThan(5);
    for (const path of mounts) expect(existsSync(path), path).toBe(true);
  });
});

// ------------------------------------------------------------------------------------------------ envoy
describe("envoy/envoy.yaml", () => {
  // biome-ignore lint/suspicious/noExplicitAny: a parsed Envoy bootstrap, checked field by field
  const envoy = readYaml<any>("envoy/envoy.yaml");
  const listener = envoy.static_resources.listeners[0];
  const manager = listener.filter_chains[0].filters[0].typed_config;

  test("listens on 50051 with admin on 9901", () => {
    expect(listener.address.socket_address.port_value).toBe(50051);
    expect(envoy.admin.address.socket_address.port_value).toBe(9901);
  });

  test("http filters are grpc_web, cors, router, each with a typed config", () => {
    expect(manager.http_filters.map((f: { name: string }) => f.name)).toEqual([
      "envoy.filters.http.grpc_web",
      "envoy.filters.http.cors",
      "envoy.filters.http.router",
    ]);
    for (const filter of manager.http_filters) expect(filter.typed_config["@type"]).toMatch(/^type\.googleapis\.com\//);
  });

  test("the gateway cluster is the gateway's gRPC port over HTTP/2, health-checked on the TaskService", () => {
    const cluster = envoy.static_resources.clusters.find((c: { name: string }) => c.name === "gateway");
    const address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    expect(address).toEqual({ address: "gateway", port_value: GATEWAY_GRPC_PORT });
    expect(compose.services[address.address]).toBeDefined();
    const options = cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    expect(options.explicit_http_config).toHaveProperty("http2_protocol_options");
    const proto = readFileSync("proto/taskmanager/v1/taskmanager.proto", "utf8");
    const serviceName = `${/package\s+([\w.]+);/.exec(proto)?.[1]}.${/service\s+(\w+)\s*\{/.exec(proto)?.[1]}`;
    expect(cluster.health_checks[0].grpc_health_check.service_name).toBe(serviceName);
  });

  test("the console listener forwards everything to the gateways' web ports, streams uncut", () => {
    const console = envoy.static_resources.listeners.find((l: { name: string }) => l.name === "console_ingress");
    expect(console.address.socket_address.port_value).toBe(GATEWAY_WEB_PORT);
    const hcm = console.filter_chains[0].filters[0].typed_config;
    expect(hcm.stream_idle_timeout).toBe("3600s");
    expect(hcm.http_filters.map((f: { name: string }) => f.name)).toEqual(["envoy.filters.http.router"]);
    const [route] = hcm.route_config.virtual_hosts[0].routes;
    expect(route).toMatchObject({ match: { prefix: "/" }, route: { cluster: "gateway_web", timeout: "0s" } });
    const cluster = envoy.static_resources.clusters.find((c: { name: string }) => c.name === "gateway_web");
    expect(cluster.type).toBe("STRICT_DNS");
    const address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    expect(address).toEqual({ address: "gateway", port_value: GATEWAY_WEB_PORT });
    // The health check asks a path the web port serves without credentials (services/gateway/src/web-server.ts).
    expect(cluster.health_checks[0].http_health_check.path).toBe("/console-config.json");
  });

  test("streams are not cut: every server-streaming method has a route without timeout or retry", () => {
    expect(["0s", "3600s"]).toContain(manager.stream_idle_timeout);
    const routes = manager.route_config.virtual_hosts[0].routes;
    for (const route of routes) expect(route.route.max_stream_duration.grpc_timeout_header_max).toBe("0s");
    // From the service descriptor, so a streaming method added to the proto cannot be left on the unary route.
    const streaming = TaskService.methods.filter((m) => m.methodKind === "server_streaming");
    expect(streaming.map((m) => m.name)).toEqual(["StreamTaskStatus", "SubmitTaskAndStreamStatus"]);
    for (const method of streaming) {
      const path = `/${TaskService.typeName}/${method.name}`;
      // Envoy takes the first route whose prefix matches.
      const route = routes.find((r: { match: { prefix: string } }) => path.startsWith(r.match.prefix));
      expect(route?.match.prefix, path).toBe(path);
      expect(route.route.timeout, path).toBe("0s");
      expect(route.route.retry_policy, path).toBeUndefined();
    }
  });

  test("a unary call without its own deadline is bounded; a slow one is not retried (no per-try timeout)", () => {
    const routes = manager.route_config.virtual_hosts[0].routes;
    // The catch-all comes last: Envoy takes the first match, so the stream route must precede it.
    const unary = routes.at(-1);
    expect(unary.match.prefix).toBe("/");
    expect(unary.route.timeout).toBe("30s");
    expect(unary.route.retry_policy.per_try_timeout).toBeUndefined();
    expect(unary.route.retry_policy.retry_on.split(",")).not.toContain("deadline-exceeded");
  });
});

// ------------------------------------------------------------------------------------------------ Dockerfile
describe("Dockerfile", () => {
  const dockerfile = readFileSync("Dockerfile", "utf8");

  test("runs each service the way its package.json start script does, as a non-root user", () => {
    expect(dockerfile).toContain(`CMD ["${SERVICE_COMMAND.join('", "')}"]`);
    expect(dockerfile).toMatch(/^USER node$/m);
    for (const name of serviceNames) {
      const pkg = JSON.parse(readFileSync(`services/${name}/package.json`, "utf8"));
      expect(pkg.name).toBe(`@tm/${name}`);
      expect(pkg.scripts.start).toBe(SERVICE_COMMAND.join(" "));
    }
  });

  test("each service's bundle loads from node_modules only production dependencies of the service (the image has them)", () => {
    // scripts/bundle.mjs leaves EXTERNAL out of the bundle: what a bundle imports or requires of them must be in the
    // service's own dependencies, or `pnpm deploy --prod` leaves it out and the image fails at start.
    const loads = (bundle: string, name: string) =>
      new RegExp(String.raw`(?:from ?|require\(|import\(|\)\()"${name.replace(/[/.]/g, "\\$&")}"`).test(bundle);
    const checked: string[] = [];
    for (const name of [...serviceNames, "combined"]) {
      const entry = `services/${name}/${SERVICE_COMMAND.at(-1)}`;
      expect(existsSync(entry), `${entry} (pnpm build)`).toBe(true);
      const bundle = readFileSync(entry, "utf8");
      const dependencies = JSON.parse(readFileSync(`services/${name}/package.json`, "utf8")).dependencies ?? {};
      for (const external of EXTERNAL) {
        if (!loads(bundle, external)) continue;
        checked.push(`${name}:${external}`);
        expect(dependencies, `${name} loads ${external} at run time`).toHaveProperty(external);
      }
    }
    // The check sees the loads: every service loads ioredis and pino, the gateway grpc-js and the console.
    expect(checked).toEqual(expect.arrayContaining(["gateway:@grpc/grpc-js", "gateway:@tm/console", "worker:ioredis"]));
    expect(checked.filter((c) => c.endsWith(":pino"))).toHaveLength(serviceNames.length + 1);
  });

  test("both stages run the Node.js major given by NODE_VERSION, by default package.json's minimum (what CI runs)", () => {
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map(([, image]) => image);
    const image = "node:$" + "{NODE_VERSION}-bookworm-slim"; // the Dockerfile's text, not a template
    expect(froms).toEqual([image, image]);
    // Declared before the first FROM, so both FROM lines see it.
    const declared = /^ARG NODE_VERSION=(\d+)$/m.exec(dockerfile);
    expect(declared?.index).toBeLessThan(dockerfile.indexOf("\nFROM "));
    const engines = JSON.parse(readFileSync("package.json", "utf8")).engines.node as string;
    expect(declared?.[1]).toBe(/^>=(\d+)/.exec(engines)?.[1]);
  });

  test("the health check's default ops ports are the services' own", () => {
    const defaults = /const defaults=(\{[^}]*\})/.exec(dockerfile)?.[1];
    const parsed = Object.fromEntries(
      [...(defaults ?? "").matchAll(/'?([\w-]+)'?:(\d+)/g)].map(([, name, port]) => [name, Number(port)]),
    );
    expect(parsed).toEqual(Object.fromEntries(serviceNames.map((n) => [n, opsPortOf(definitions.get(n)!)])));
  });

  /** The build stage's SERVICE check (the RUN line starting `test -n "${SERVICE}"`), continuation lines joined. */
  const serviceCheck = /^RUN (test -n "\$\{SERVICE\}"(?:.*\\\n)*.*)$/m.exec(dockerfile)?.[1]?.replaceAll("\\\n", " ");
  /** Runs that check as the build's /bin/sh would, from the repository root (the build's WORKDIR holds a copy). */
  const checkService = (service: string) =>
    spawnSync("sh", ["-c", serviceCheck ?? "exit 99"], {
      env: { PATH: process.env.PATH, SERVICE: service },
      encoding: "utf8",
    });

  test.each([...serviceNames, "combined"])("the build accepts SERVICE=%s", (name) => {
    expect(serviceCheck).toBeDefined();
    const run = checkService(name);
    expect(run.status, run.stderr).toBe(0);
  });

  test.each(["client", "", "nope", "../pkg/kit"])("the build refuses SERVICE='%s' with a clear message", (name) => {
    const run = checkService(name);
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain(`build arg SERVICE must name a server service under services/`);
    expect(run.stderr).toContain(`(got '${name}')`);
  });

  test("the combined image: the same start command, every service a production dependency, every one in the map", () => {
    const pkg = JSON.parse(readFileSync("services/combined/package.json", "utf8"));
    expect(pkg.name).toBe("@tm/combined");
    expect(pkg.scripts.start).toBe(SERVICE_COMMAND.join(" ")); // CMD runs dist/bundle/index.js, from src/index.ts
    expect(existsSync("services/combined/src/index.ts")).toBe(true);
    // `pnpm --filter @tm/combined... run build` builds them and `deploy --prod` copies them into the image.
    for (const name of serviceNames) expect(pkg.dependencies, name).toHaveProperty(`@tm/${name}`, "workspace:*");
    expect([...COMBINABLE_SERVICES].sort()).toEqual([...serviceNames].sort());
    // Nothing else in the recipe names a single service's files: the entry is dist/bundle/index.js for every SERVICE.
    expect(dockerfile).not.toMatch(/src\/service\.ts|dist\/service\.js/);
  });

  describe("the HEALTHCHECK command, run with node against a local server", () => {
    const command = /^HEALTHCHECK .* CMD (\[.*\])$/m.exec(dockerfile)?.[1];
    const [node, flag, code] = JSON.parse(command ?? "[]") as string[];
    let server: Server;
    let port: number;
    let status = 200;
    const paths: string[] = [];

    /** Exit code of `node -e <code>` with only this environment (spawn, not spawnSync: the server shares this loop). */
    const healthcheck = (env: Record<string, string>) =>
      new Promise<number | null>((resolve, reject) => {
        const child = spawn(process.execPath, ["-e", code ?? "process.exit(99)"], {
          env: { PATH: process.env.PATH, ...env },
          stdio: "ignore",
        });
        child.once("error", reject);
        child.once("exit", (exitCode) => resolve(exitCode));
      });
    /** A port nothing listens on (bound, then released). */
    const closedPort = async () => {
      const probe = createServer();
      await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
      const { port: free } = probe.address() as AddressInfo;
      await new Promise((resolve) => probe.close(resolve));
      return String(free);
    };

    beforeAll(async () => {
      server = createServer((request, response) => {
        paths.push(request.url ?? "");
        response.statusCode = request.url === "/healthz" ? status : 404;
        response.end();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => new Promise((resolve) => server.close(resolve)));
    beforeEach(() => {
      status = 200;
      paths.length = 0;
    });

    test("is node -e code (slim images have no curl)", () => {
      expect([node, flag]).toEqual(["node", "-e"]);
      expect(code).toContain("/healthz");
    });

    test("a single service: OPS_PORT, or PORT for the services whose ops routes are on their API", async () => {
      expect(await healthcheck({ SERVICE: "worker", OPS_PORT: String(port) })).toBe(0);
      expect(await healthcheck({ SERVICE: "enricher", PORT: String(port) })).toBe(0);
      expect(paths).toEqual(["/healthz", "/healthz"]);
    });

    test("a single service: 1 when /healthz answers 503 or nothing listens", async () => {
      status = 503;
      expect(await healthcheck({ SERVICE: "worker", OPS_PORT: String(port) })).toBe(1);
      expect(paths).toEqual(["/healthz"]);
      expect(await healthcheck({ SERVICE: "worker", OPS_PORT: await closedPort() })).toBe(1);
    });

    test("combined: the first service of TM_SERVICES, on its own <SERVICE>__OPS_PORT / __PORT", async () => {
      const [notifierFirst, resultStoreFirst, aloneWithBarePort] = await Promise.all([
        healthcheck({ SERVICE: "combined", TM_SERVICES: "notifier,audit", NOTIFIER__OPS_PORT: String(port) }),
        healthcheck({ SERVICE: "combined", TM_SERVICES: " result-store , notifier", RESULT_STORE__PORT: String(port) }),
        // One service may take a bare OPS_PORT (services/combined/src/selection.ts).
        healthcheck({ SERVICE: "combined", TM_SERVICES: "notifier", OPS_PORT: String(port) }),
      ]);
      expect([notifierFirst, resultStoreFirst, aloneWithBarePort]).toEqual([0, 0, 0]);
      expect(paths).toEqual(["/healthz", "/healthz", "/healthz"]);
    });

    test("combined: 1 when the first service answers 503, nothing listens on its port, or only another is up", async () => {
      const closed = await closedPort();
      status = 503;
      expect(
        await healthcheck({ SERVICE: "combined", TM_SERVICES: "notifier,audit", NOTIFIER__OPS_PORT: String(port) }),
      ).toBe(1);
      expect(paths).toEqual(["/healthz"]);
      status = 200;
      expect(
        await healthcheck({ SERVICE: "combined", TM_SERVICES: "notifier,audit", NOTIFIER__OPS_PORT: closed }),
      ).toBe(1);
      // The second service's port is not the one checked.
      expect(
        await healthcheck({
          SERVICE: "combined",
          TM_SERVICES: "notifier,audit",
          NOTIFIER__OPS_PORT: closed,
          AUDIT__OPS_PORT: String(port),
        }),
      ).toBe(1);
      expect(paths).toEqual(["/healthz"]);
    });
  });

  test("copies the dependency patches before pnpm fetches and installs (else the image runs unpatched nats.js)", () => {
    const workspace = readYaml<{ patchedDependencies?: Record<string, string> }>("pnpm-workspace.yaml");
    const patches = Object.values(workspace.patchedDependencies ?? {});
    expect(patches.length).toBeGreaterThan(0);
    for (const patch of patches) expect(patch.startsWith("patches/"), patch).toBe(true);
    const copy = dockerfile.indexOf("COPY patches ./patches");
    expect(copy).toBeGreaterThan(-1);
    expect(copy).toBeLessThan(dockerfile.indexOf("pnpm fetch"));
  });

  test("the pnpm version is the one package.json pins", () => {
    const pinned = JSON.parse(readFileSync("package.json", "utf8")).packageManager.replace("pnpm@", "");
    expect(dockerfile).toContain(`npm install -g pnpm@${pinned}`);
  });
});

// ------------------------------------------------------------------------------------------------ k8s
describe("k8s", () => {
  test("the copies of config files under k8s/configs equal their originals (node k8s/sync-configs.mjs)", () => {
    expect(staleCopies()).toEqual([]);
  });

  describe("Prometheus on Kubernetes (k8s/observability/prometheus-kubernetes.yml)", () => {
    // biome-ignore lint/suspicious/noExplicitAny: parsed configs are checked field by field
    const k8sConfig = readYaml<any>("k8s/observability/prometheus-kubernetes.yml");
    // biome-ignore lint/suspicious/noExplicitAny: parsed configs are checked field by field
    const composeConfig = readYaml<any>("configs/prometheus/prometheus.yml");
    // biome-ignore lint/suspicious/noExplicitAny: scrape jobs are untyped trees
    const jobs = (config: any) => new Map<string, any>(config.scrape_configs.map((j: any) => [j.job_name, j]));

    test("is compose's config except how the pipeline's targets are found", () => {
      expect(k8sConfig.global).toEqual(composeConfig.global);
      expect(k8sConfig.rule_files).toEqual(composeConfig.rule_files);
      const [k8sJobs, composeJobs] = [jobs(k8sConfig), jobs(composeConfig)];
      expect([...k8sJobs.keys()].sort()).toEqual([...composeJobs.keys()].sort());
      for (const [name, job] of composeJobs) if (name !== "services") expect(k8sJobs.get(name), name).toEqual(job);
    });

    test("the services job keeps every pipeline pod's metrics port, one target per pod, labelled by service", () => {
      const job = jobs(k8sConfig).get("services");
      expect(job.kubernetes_sd_configs).toEqual([{ role: "pod", namespaces: { own_namespace: true } }]);
      const rules = job.relabel_configs as Array<Record<string, unknown>>;
      const rule = (label: string) => rules.find((r) => (r.source_labels as string[])?.includes(label));
      expect(rule("__meta_kubernetes_pod_label_app_kubernetes_io_component")).toMatchObject({
        regex: "pipeline",
        action: "keep",
      });
      expect(rule("__meta_kubernetes_pod_container_port_name")).toMatchObject({ regex: "ops|http", action: "keep" });
      expect(rule("__meta_kubernetes_pod_label_app_kubernetes_io_name")).toMatchObject({ target_label: "service" });
      expect(rule("__meta_kubernetes_pod_name")).toMatchObject({ target_label: "instance" });
    });

    // Debian's promtool is built without Kubernetes discovery, so the discovery block is swapped for a static
    // one: promtool then checks everything else (relabel rules, jobs, the rule file) as Prometheus would.
    const promtool = process.env.PROMTOOL ?? "promtool";
    const hasPromtool = spawnSync(promtool, ["--version"]).status === 0;
    test.skipIf(!hasPromtool)("promtool accepts it (discovery swapped for a static target)", () => {
      const dir = mkdtempSync(join(tmpdir(), "tm-prom-"));
      try {
        const config = structuredClone(k8sConfig);
        const job = config.scrape_configs.find((j: { job_name: string }) => j.job_name === "services");
        delete job.kubernetes_sd_configs;
        job.static_configs = [{ targets: ["pod:8080"] }];
        writeFileSync(join(dir, "prometheus.yml"), JSON.stringify(config)); // JSON is YAML
        copyFileSync("configs/prometheus/alerts.yml", join(dir, "alerts.yml"));
        const run = spawnSync(promtool, ["check", "config", join(dir, "prometheus.yml")], { encoding: "utf8" });
        expect(run.status, run.stdout + run.stderr).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  const hasKubectl = kubectlAvailable();
  if (!hasKubectl) console.warn("kubectl not found: skipping the rendered k8s checks (install kubectl to run them)");

  describe.skipIf(!hasKubectl)("kubectl kustomize k8s", () => {
    const objects = hasKubectl ? renderKustomize("k8s") : [];
    const find = (kind: string, name: string) =>
      objects.find((o) => o.kind === kind && (o.metadata.name === name || o.metadata.name.startsWith(`${name}-`)));
    const configMap = (name: string) => find("ConfigMap", name) as K8sObject;
    const secret = (name: string) => find("Secret", name) as K8sObject;
    // biome-ignore lint/suspicious/noExplicitAny: container specs checked field by field
    const containerOf = (name: string): any => find("Deployment", name)?.spec.template.spec.containers[0];

    /** What a container reads at `path` from a Secret mounted as a directory (never with subPath: such a mount is
     *  never updated, and the file would not rotate). */
    function mountedSecretFile(name: string, path: string): string {
      const container = containerOf(name);
      const mount = (container.volumeMounts ?? []).find((m: { mountPath: string }) =>
        path.startsWith(`${m.mountPath}/`),
      );
      expect(mount, `${name} mounts nothing at ${path}`).toBeDefined();
      expect(mount.subPath).toBeUndefined();
      const volumes = find("Deployment", name)?.spec.template.spec.volumes ?? [];
      const volume = volumes.find((v: { name: string }) => v.name === mount.name);
      const data = secret(volume.secret.secretName).data ?? {};
      return Buffer.from(data[path.slice(mount.mountPath.length + 1)] ?? "", "base64").toString();
    }

    /** The environment a container starts with: its envFrom ConfigMaps, then env (Secret values decoded). */
    function k8sEnv(name: string): Record<string, string> {
      const container = containerOf(name);
      const env: Record<string, string> = {};
      for (const from of container.envFrom ?? []) {
        if (from.configMapRef) Object.assign(env, configMap(from.configMapRef.name).data);
      }
      for (const { name: key, value, valueFrom } of container.env ?? []) {
        if (valueFrom?.secretKeyRef) {
          const data = secret(valueFrom.secretKeyRef.name).data ?? {};
          env[key] = Buffer.from(data[valueFrom.secretKeyRef.key] ?? "", "base64").toString();
        } else env[key] = value;
      }
      return env;
    }

    test("everything is in the task-manager namespace and labelled part-of task-manager", () => {
      for (const object of objects) {
        if (!["Namespace", "ClusterRole", "ClusterRoleBinding"].includes(object.kind)) {
          expect(object.metadata.namespace, `${object.kind}/${object.metadata.name}`).toBe("task-manager");
        }
        expect(object.metadata.labels?.["app.kubernetes.io/part-of"]).toBe("task-manager");
      }
    });

    test.each(serviceNames)("%s has a ServiceAccount, a Deployment of its own image and a Service", (name) => {
      expect(find("ServiceAccount", name)).toBeDefined();
      expect(find("Service", name)).toBeDefined();
      const deployment = find("Deployment", name)!;
      expect(deployment.spec.template.spec.serviceAccountName).toBe(name);
      expect(containerOf(name).image).toMatch(new RegExp(`^task-manager/${name}:`));
      expect(containerOf(name).args).toEqual(SERVICE_COMMAND);
    });

    test.each(serviceNames)("%s gets an environment its config accepts, with R3 streams", (name) => {
      const definition = definitions.get(name)!;
      const env = k8sEnv(name);
      expect(configErrorOf(definition, env)).toBeUndefined();
      for (const variable of ["NATS_URL", "REDIS_URL", "OTEL_SERVICE_NAME", ...requiredVariablesOf(definition)]) {
        expect(env, `${name}: ${variable}`).toHaveProperty(variable);
      }
      for (const variable of Object.keys(env))
        expect(variablesOf(definition), `${name}: ${variable}`).toContain(variable);
      expect(env.NATS_STREAM_REPLICAS).toBe("3");
      expect(env.OTEL_SERVICE_NAME).toBe(name);
      if (usesNats(definition)) expect(env.NATS_USER).toBe(name);
      expect(env[opsPortVariable(definition)]).toBe(String(opsPortOf(definition)));
    });

    test.each(serviceNames)(
      "%s: probes on the ops port (startup allowing the JetStream wait), hardened, with resources",
      (name) => {
        const container = containerOf(name);
        const port = opsPortOf(definitions.get(name)!);
        const portNamed = (ref: string | number) =>
          typeof ref === "number" ? ref : container.ports.find((p: { name: string }) => p.name === ref)?.containerPort;
        expect(container.readinessProbe.httpGet.path).toBe("/readyz");
        expect(portNamed(container.readinessProbe.httpGet.port)).toBe(port);
        expect(container.livenessProbe.httpGet.path).toBe("/healthz");
        expect(portNamed(container.livenessProbe.httpGet.port)).toBe(port);
        // A start may wait up to 60 s for JetStream (pkg/kit/src/jetstream-startup.ts): the startup probe, which holds
        // liveness off until it passes, must allow that with a margin.
        const startup = container.startupProbe;
        if (startup.grpc) expect(name).toBe("gateway");
        else {
          expect(startup.httpGet.path).toBe("/healthz");
          expect(portNamed(startup.httpGet.port)).toBe(port);
        }
        expect(startup.periodSeconds * startup.failureThreshold).toBeGreaterThanOrEqual(90);
        expect(container.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ["ALL"] },
        });
        expect(find("Deployment", name)!.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
        expect(container.resources.requests).toHaveProperty("cpu");
        expect(container.resources.limits).toHaveProperty("memory");
        const servicePorts = find("Service", name)!.spec.ports.map((p: { port: number }) => p.port);
        expect(servicePorts).toContain(port);
      },
    );

    test("the gateway serves gRPC on the port Envoy's cluster names, behind a headless Service", () => {
      expect(k8sEnv("gateway").GRPC_PORT).toBe(String(GATEWAY_GRPC_PORT));
      const service = find("Service", "gateway")!;
      expect(service.spec.clusterIP).toBe("None");
      expect(service.spec.ports.map((p: { port: number }) => p.port)).toContain(GATEWAY_GRPC_PORT);
      expect(configMap("envoy-config").data?.["envoy.yaml"]).toBe(readFileSync("envoy/envoy.yaml", "utf8"));
      expect(find("Service", "envoy")!.spec.ports[0].port).toBe(50051);
    });

    test("the console is reachable through Envoy's Service, and the gateway pods expose their web port", () => {
      const envoyPorts = find("Service", "envoy")!.spec.ports;
      expect(envoyPorts).toContainEqual(expect.objectContaining({ port: GATEWAY_WEB_PORT, targetPort: "console" }));
      const envoyContainer = find("Deployment", "envoy")!.spec.template.spec.containers[0];
      expect(envoyContainer.ports).toContainEqual({ name: "console", containerPort: GATEWAY_WEB_PORT });
      const gatewayContainer = find("Deployment", "gateway")!.spec.template.spec.containers[0];
      expect(gatewayContainer.ports).toContainEqual({ name: "web", containerPort: GATEWAY_WEB_PORT });
      expect(k8sEnv("gateway").GATEWAY_WEB_PORT).toBeUndefined();
      expect(find("Service", "gateway")!.spec.ports.map((p: { port: number }) => p.port)).toContain(GATEWAY_WEB_PORT);
    });

    test("the gateway authenticates callers on Kubernetes too", () => {
      expect(["api-key", "jwt"]).toContain(k8sEnv("gateway").GATEWAY_AUTH_MODE);
    });

    /** The API key Secret's file: caller → key. */
    const keyFile = () =>
      new Map(
        readFileSync("k8s/secrets/gateway-api-keys.txt", "utf8")
          .split("\n")
          .map((line) => line.trim())
          .filter((line) => line !== "" && !line.startsWith("#"))
          .map((line) => [line.split(":")[0] ?? "", line.slice(line.indexOf(":") + 1)]),
      );

    test("the gateway's operators are callers of the API key Secret's file", () => {
      const admins = (k8sEnv("gateway").GATEWAY_ADMIN_CALLERS ?? "").split(",").filter(Boolean);
      expect(admins.length).toBeGreaterThan(0);
      for (const admin of admins) expect([...keyFile().keys()]).toContain(admin);
    });

    test("the workers submit child tasks through Envoy's Service with a key of the file, a child submitter's, in batches it takes", () => {
      const worker = k8sEnv("worker");
      const url = new URL(worker.WORKER_GATEWAY_URL!);
      const ports = find("Service", url.hostname)!.spec.ports.map((p: { port: number }) => p.port);
      expect(url.hostname).toBe("envoy");
      expect(ports).toContain(Number(url.port));
      // Read from a mounted Secret as the worker parses it, so that it rotates without a restart.
      const key = parseGatewayKeyFile(mountedSecretFile("worker", worker.WORKER_GATEWAY_API_KEY_FILE!), "k8s");
      const caller = [...keyFile()].find(([, known]) => known === key)?.[0];
      expect(caller, "the workers' key is one of the gateway's").toBeDefined();
      expect((k8sEnv("gateway").GATEWAY_CHILD_SUBMITTERS ?? "").split(",")).toContain(caller);
      expect((k8sEnv("gateway").GATEWAY_ADMIN_CALLERS ?? "").split(",")).not.toContain(caller);
      expectChildBatchesFit(worker, k8sEnv("gateway"));
      // The gateways' own key file is mounted the same way.
      expect(mountedSecretFile("gateway", k8sEnv("gateway").GATEWAY_API_KEYS_FILE!)).toContain(`${caller}:${key}`);
    });

    test("ingest reaches the enricher's Service on its port", () => {
      const url = new URL(k8sEnv("ingest").ENRICHER_URL!);
      const ports = find("Service", url.hostname)!.spec.ports.map((p: { port: number }) => p.port);
      expect(ports).toContain(Number(url.port));
    });

    test("NATS is a 3-node JetStream cluster on PVCs with the project's users; Redis keeps an AOF on a PVC", () => {
      const nats = find("StatefulSet", "nats")!;
      expect(nats.spec.replicas).toBe(3);
      expect(nats.spec.volumeClaimTemplates[0].metadata.name).toBe("data");
      const config = configMap("nats-config").data!;
      expect(config["nats.conf"]).toMatch(/jetstream\s*\{/);
      expect(config["nats.conf"]).toContain("include ./auth.conf");
      expect(config["auth.conf"]).toBe(readFileSync("configs/nats/auth.conf", "utf8"));
      const routes = config["nats.conf"]!.match(/nats:\/\/nats-\d+\.nats-headless:6222/g) ?? [];
      expect(routes).toHaveLength(nats.spec.replicas);
      // The preStop hook signals lame-duck mode through the pid file: the server must write it where the hook looks.
      const container = nats.spec.template.spec.containers[0];
      const signal = (container.lifecycle?.preStop?.exec?.command ?? []).join(" ");
      const pidFile = /ldm=(\S+)/.exec(signal)?.[1];
      expect(pidFile, "preStop signals lame-duck mode").toBeDefined();
      expect(config["nats.conf"]).toContain(`pid_file: ${pidFile}`);
      const passwords = secret("nats-passwords").data ?? {};
      for (const user of natsUsers) expect(passwords).toHaveProperty(passwordVariable(user));
      const redis = find("StatefulSet", "redis")!;
      expect(redis.spec.template.spec.containers[0].args).toContain("--appendonly");
      expect(redis.spec.volumeClaimTemplates).toHaveLength(1);
    });

    test("the gateway and the worker autoscale on CPU", () => {
      const targets = objects
        .filter((o) => o.kind === "HorizontalPodAutoscaler")
        .map((o) => o.spec.scaleTargetRef.name)
        .sort();
      expect(targets).toEqual(["gateway", "worker"]);
    });

    test("the observability stack is deployed with its configs", () => {
      for (const name of ["otel-collector", "tempo", "loki", "prometheus", "grafana"]) {
        expect(find("Deployment", name), name).toBeDefined();
      }
      expect(find("DaemonSet", "promtail")).toBeDefined();
      expect(configMap("prometheus-config").data?.["prometheus.yml"]).toBe(
        readFileSync("k8s/observability/prometheus-kubernetes.yml", "utf8"),
      );
    });

    test("Promtail on Kubernetes parses log lines as compose's does: level a label, trace and task ids metadata", () => {
      // biome-ignore lint/suspicious/noExplicitAny: promtail configs are untyped trees
      const [k8sPromtail] = parseYamlDocuments<any>(configMap("promtail-config").data?.["promtail.yaml"] ?? "");
      // biome-ignore lint/suspicious/noExplicitAny: promtail configs are untyped trees
      const composePromtail = readYaml<any>("configs/promtail/promtail.yaml");
      const [first, ...rest] = k8sPromtail.scrape_configs[0].pipeline_stages;
      expect(first).toEqual({ cri: {} }); // the container runtime's envelope comes first on a node
      expect(rest).toEqual(composePromtail.scrape_configs[0].pipeline_stages);
    });

    test.each(serviceNames)("Prometheus discovers every %s pod: labelled pipeline, one metrics port", (name) => {
      const template = find("Deployment", name)!.spec.template;
      expect(template.metadata.labels).toMatchObject({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": "pipeline",
      });
      const metricsPorts = template.spec.containers
        .flatMap((c: { ports?: Array<{ name: string; containerPort: number }> }) => c.ports ?? [])
        .filter((p: { name: string }) => /^(ops|http)$/.test(p.name));
      expect(metricsPorts.map((p: { containerPort: number }) => p.containerPort)).toEqual([
        opsPortOf(definitions.get(name)!),
      ]);
    });

    test("Prometheus may list and watch pods in its namespace, and nothing more", () => {
      const deployment = find("Deployment", "prometheus")!;
      const account = deployment.spec.template.spec.serviceAccountName;
      expect(find("ServiceAccount", account)).toBeDefined();
      expect(
        objects.filter((o) => o.kind === "ClusterRoleBinding" && JSON.stringify(o).includes(`"${account}"`)),
      ).toEqual([]);
      // biome-ignore lint/suspicious/noExplicitAny: RBAC objects have subjects/roleRef/rules, not spec
      const rbac = objects as any[];
      const binding = rbac.find(
        (o) => o.kind === "RoleBinding" && o.subjects?.some((s: { name: string }) => s.name === account),
      );
      expect(binding).toBeDefined();
      const role = rbac.find((o) => o.kind === "Role" && o.metadata.name === binding.roleRef.name);
      expect(role.rules).toEqual([{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] }]);
    });
  });
});
