#!/usr/bin/env node
/**
 * Renders the NATS `authorization` block from permissions.json (the single source of truth) into auth.conf, and
 * copies it to k8s/configs/nats/ (kustomize cannot read files outside k8s/).
 *
 *   node configs/nats/render.mjs           write both files
 *   node configs/nats/render.mjs --check   fail if either file is stale
 *   node configs/nats/render.mjs --nsc [--account TM]
 *                                          print the nsc commands that create the same users as JWTs, for a
 *                                          nats-server in operator mode (services then use NATS_CREDS_FILE)
 *
 * Passwords are NATS config variables (`$TM_<USER>_NATS_PASSWORD`), which nats-server resolves from its own
 * environment at start-up, so no secret is ever written to a file in the repository.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const PERMISSIONS_FILE = join(here, "permissions.json");
export const AUTH_FILE = join(here, "auth.conf");
export const K8S_AUTH_FILE = join(here, "..", "..", "k8s", "configs", "nats", "auth.conf");

/** Every service provisions the streams at start-up (whichever starts first creates them): pkg/flow's allStreamConfigs. */
export const STREAM_NAMES = ["TASKS", "EVENTS", "ADVISORIES"];
const STREAM_API = ["INFO", "CREATE", "UPDATE"].flatMap((op) => STREAM_NAMES.map((s) => `$JS.API.STREAM.${op}.${s}`));

/** The deadletter service's durable on ADVISORIES (pkg/flow ADVISORY_DURABLE), which it creates without a filter. */
export const ADVISORY_DURABLE = "deadletter-advisories";
const ADVISORY_CONSUMER_API = [
  `$JS.API.CONSUMER.INFO.ADVISORIES.${ADVISORY_DURABLE}`,
  `$JS.API.CONSUMER.CREATE.ADVISORIES.${ADVISORY_DURABLE}`,
  `$JS.API.CONSUMER.MSG.NEXT.ADVISORIES.${ADVISORY_DURABLE}`,
  `$JS.ACK.ADVISORIES.${ADVISORY_DURABLE}.>`,
];

/** Same rules as pkg/flow streams.ts (streamOf, durableName); the integration test cross-checks them. */
export const streamOf = (subject) => (subject.startsWith("events.") ? "EVENTS" : "TASKS");
export const durableName = (service, subject) => `${service}-${subject.replaceAll(".", "-")}`;

/**
 * The inbox prefix a user's connection uses (pkg/kit's connection: NATS_INBOX_PREFIX's default), the only inbox it may
 * subscribe to: a user allowed `_INBOX.>` could read every other service's replies (JetStream API answers, publish
 * acks, pulled messages).
 */
export const inboxPrefixOf = (user) => `_INBOX_${user}`;

/** The environment variable nats-server reads a user's password from. */
export const passwordVariable = (user) => `TM_${user.toUpperCase().replaceAll("-", "_")}_NATS_PASSWORD`;

/** The JetStream API subjects a pull consumer of `subject` needs, pinned to its own durable and filter. */
function consumerApi(service, subject) {
  const stream = streamOf(subject);
  const durable = durableName(service, subject);
  return [
    `$JS.API.CONSUMER.INFO.${stream}.${durable}`,
    // nats.js on a 2.9+ server creates and updates with the filter subject in the API subject; the server checks
    // that it matches the request body, so a user cannot point its durable at someone else's subject.
    `$JS.API.CONSUMER.CREATE.${stream}.${durable}.${subject}`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`,
    `$JS.ACK.${stream}.${durable}.>`,
  ];
}

export function permissionsOf(user, spec) {
  const publish = [
    ...spec.publish,
    "$JS.API.INFO",
    ...STREAM_API,
    ...spec.consume.flatMap((subject) => consumerApi(user, subject)),
    ...(spec.readStreams ?? []).map((stream) => `$JS.API.STREAM.MSG.GET.${stream}`),
    ...(spec.listConsumers ?? []).map((stream) => `$JS.API.CONSUMER.LIST.${stream}`),
    ...(spec.consumeAdvisories ? ADVISORY_CONSUMER_API : []),
  ];
  // Replies to JetStream API calls, publish acks and pull requests all arrive on the connection's inbox: its own.
  const subscribe = [`${inboxPrefixOf(user)}.>`, ...spec.subscribe];
  return { publish, subscribe };
}

const quote = (s) => JSON.stringify(s);
const list = (items, indent) => `[\n${items.map((i) => `${indent}  ${quote(i)}`).join(",\n")}\n${indent}]`;

/**
 * The `authorization { users: [...] }` block. `password(user)` returns the config text of the password: a
 * `$VARIABLE` reference for deployments, a quoted literal in tests.
 */
export function renderAuthorization(permissions, password = (user) => `$${passwordVariable(user)}`) {
  const users = Object.entries(permissions.users).map(([user, spec]) => {
    const { publish, subscribe } = permissionsOf(user, spec);
    return [
      "    {",
      `      user: ${quote(user)}`,
      `      password: ${password(user)}`,
      "      permissions: {",
      `        publish: { allow: ${list(publish, "        ")} }`,
      `        subscribe: { allow: ${list(subscribe, "        ")} }`,
      "      }",
      "    }",
    ].join("\n");
  });
  return [
    "# GENERATED by configs/nats/render.mjs from configs/nats/permissions.json. Do not edit by hand.",
    "# One user per service; each may publish only what it produces and pull only from its own durables.",
    "authorization {",
    "  users: [",
    users.join(",\n"),
    "  ]",
    "}",
    "",
  ].join("\n");
}

/** A shell word: single-quoted (subjects hold `$`, `>` and `*`). */
const shellWord = (s) => `'${s.replaceAll("'", "'\\''")}'`;

/**
 * The `nsc` commands that create each service's user in `account` with the permissions above (each subject its own
 * --allow-pub / --allow-sub, which nsc accepts repeated), and write its .creds file; then the variables the service
 * needs. The inbox is the user's own, as with passwords, so NATS_INBOX_PREFIX must name it (there is no NATS_USER
 * to default it from).
 */
export function renderNscCommands(permissions, account = "TM") {
  const lines = [
    "# GENERATED by configs/nats/render.mjs --nsc from configs/nats/permissions.json: one user per service, with the",
    "# same permissions as auth.conf's, in an account with JetStream enabled (nsc edit account's --js-* limits).",
    "# Then mount each <user>.creds and give the service",
    "# NATS_CREDS_FILE=/path/to/<user>.creds and NATS_INBOX_PREFIX=_INBOX_<user> (docs/DEPLOYMENT.md).",
  ];
  for (const [user, spec] of Object.entries(permissions.users)) {
    const { publish, subscribe } = permissionsOf(user, spec);
    lines.push(
      "",
      `nsc add user --account ${shellWord(account)} --name ${shellWord(user)} \\`,
      ...publish.map((subject) => `  --allow-pub ${shellWord(subject)} \\`),
      ...subscribe.map((subject, i) => `  --allow-sub ${shellWord(subject)}${i === subscribe.length - 1 ? "" : " \\"}`),
      `nsc generate creds --account ${shellWord(account)} --name ${shellWord(user)} --output-file ${shellWord(`${user}.creds`)}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

export function loadPermissions() {
  return JSON.parse(readFileSync(PERMISSIONS_FILE, "utf8"));
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes("--nsc")) {
  const at = process.argv.indexOf("--account");
  process.stdout.write(renderNscCommands(loadPermissions(), at > 0 ? process.argv[at + 1] : "TM"));
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rendered = renderAuthorization(loadPermissions());
  const stale = [AUTH_FILE, K8S_AUTH_FILE].filter((file) => {
    try {
      return readFileSync(file, "utf8") !== rendered;
    } catch {
      return true;
    }
  });
  if (process.argv.includes("--check")) {
    if (stale.length > 0) {
      console.error(`stale: ${stale.join(", ")} (run node configs/nats/render.mjs)`);
      process.exit(1);
    }
  } else {
    for (const file of stale) writeFileSync(file, rendered);
  }
}
