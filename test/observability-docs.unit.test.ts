/**
 * docs/OBSERVABILITY.md's table of what docker compose must provide the observability containers ("Running it")
 * against docker-compose.yml, both ways: the table has a row for every container that mounts a config from
 * configs/, and each row's image, volumes (source, target and `:ro`) and command arguments are exactly compose's.
 * A failure names the row and what differs.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "@tm/testkit";
import { describe, expect, test } from "vitest";
import { readYaml } from "../pkg/deploycheck/src/yaml.js";

const DOC = "docs/OBSERVABILITY.md";
const HEADING = "### Running it (what docker compose must provide)";
/** Compose services that mount a file from configs/ but are not part of the observability stack. */
const NOT_OBSERVABILITY = new Set(["nats"]);

/** Compose's long volume syntax (`type`, `source`, `target`, `read_only`). */
interface LongVolume {
  source?: string;
  target: string;
  read_only?: boolean;
}

interface ComposeService {
  image?: string;
  command?: string | string[];
  volumes?: Array<string | LongVolume>;
}

const compose = readYaml<{ services: Record<string, ComposeService> }>(join(REPO_ROOT, "docker-compose.yml"));

/** A volume in compose's short syntax, `source:target[:mode]`, whichever syntax compose uses (default `rw` dropped). */
function shortSyntax(volume: string | LongVolume): string {
  const [source, target, mode] =
    typeof volume === "string" ? volume.split(":") : [volume.source, volume.target, volume.read_only ? "ro" : ""];
  return [source, target, mode === "rw" ? "" : mode].filter(Boolean).join(":");
}

const sourceOf = (volume: string) => volume.split(":")[0];
const targetOf = (volume: string) => volume.split(":")[1];
/** Same source (`configs/x` and `./configs/x` alike) or same target: the compose volume a drifted row meant. */
const sameMount = (a: string, b: string) =>
  sourceOf(a)?.replace(/^\.\//, "") === sourceOf(b)?.replace(/^\.\//, "") || targetOf(a) === targetOf(b);

function commandOf(service: ComposeService): string[] {
  const { command = [] } = service;
  return typeof command === "string" ? command.split(/\s+/).filter(Boolean) : command.map(String);
}

/** `repository` and major version of an image reference (`grafana/tempo:2.6.1` → grafana/tempo, 2). */
function imageOf(reference: string): { repository: string; major?: string } {
  const colon = reference.lastIndexOf(":");
  if (colon <= reference.lastIndexOf("/")) return { repository: reference };
  return { repository: reference.slice(0, colon), major: /^v?(\d+)/.exec(reference.slice(colon + 1))?.[1] };
}

interface Row {
  container: string;
  /** `docs/OBSERVABILITY.md:<line>`, for the failure message. */
  where: string;
  image: string;
  volumes: string[];
  command: string[];
}

const codeSpans = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);

/** The rows of the first table after `heading`, by column (columns found by the first word of their header). */
function tableAfter(markdown: string, heading: string): Row[] {
  const lines = markdown.split("\n");
  const start = lines.indexOf(heading);
  if (start < 0) throw new Error(`${DOC} has no heading "${heading}"`);
  let header = start + 1;
  while (header < lines.length && !lines[header]?.startsWith("|")) {
    if (lines[header]?.startsWith("#")) throw new Error(`${DOC}: no table under "${heading}"`);
    header++;
  }
  const cellsOf = (line: string) =>
    line
      .split("|")
      .slice(1, -1)
      .map((cell) => cell.trim());
  const columns = cellsOf(lines[header] ?? "").map((name) => name.split(/\s/)[0]?.toLowerCase());
  const column = (name: string) => {
    const index = columns.indexOf(name);
    if (index < 0) throw new Error(`${DOC}: the table under "${heading}" has no "${name}" column`);
    return index;
  };
  const [container, image, volumes, command] = ["container", "image", "volumes", "command"].map(column);
  const rows: Row[] = [];
  for (let i = header + 2; lines[i]?.startsWith("|"); i++) {
    const cells = cellsOf(lines[i] as string);
    rows.push({
      container: cells[container as number] as string,
      where: `${DOC}:${i + 1}`,
      image: cells[image as number] as string,
      volumes: codeSpans(cells[volumes as number] ?? ""),
      command: codeSpans(cells[command as number] ?? ""),
    });
  }
  return rows;
}

/** What differs between a row and its compose service, each line naming the row. */
function mismatches(row: Row): string[] {
  const name = `row "${row.container}" (${row.where})`;
  const service = compose.services[row.container];
  if (!service) return [`${name}: docker-compose.yml has no service "${row.container}"`];
  const problems: string[] = [];

  const image = imageOf(service.image ?? "");
  const documented = codeSpans(row.image)[0];
  if (documented !== image.repository) {
    problems.push(`${name}: image \`${documented}\`, docker-compose.yml runs ${service.image}`);
  }
  const major = /\b(\d+)\.x\b/.exec(row.image)?.[1];
  if (major !== undefined && major !== image.major) {
    problems.push(`${name}: image ${major}.x, docker-compose.yml runs ${service.image}`);
  }

  const composed = (service.volumes ?? []).map(shortSyntax);
  for (const volume of row.volumes.filter((v) => !composed.includes(v))) {
    const near = composed.find((c) => sameMount(c, volume));
    const has = near ? `it has \`${near}\`` : `${row.container}.volumes: ${composed.join(", ") || "none"}`;
    problems.push(`${name}: volume \`${volume}\` is not in docker-compose.yml (${has})`);
  }
  for (const volume of composed.filter((c) => !row.volumes.includes(c))) {
    problems.push(`${name}: docker-compose.yml mounts \`${volume}\`, the row does not list it`);
  }

  const command = commandOf(service);
  for (const argument of row.command.filter((a) => !command.includes(a))) {
    problems.push(
      `${name}: command \`${argument}\` is not in docker-compose.yml (${command.join(" ") || "no command"})`,
    );
  }
  for (const argument of command.filter((a) => !row.command.includes(a))) {
    problems.push(`${name}: docker-compose.yml runs it with \`${argument}\`, the row does not list it`);
  }
  return problems;
}

describe(`${DOC} "Running it" table and docker-compose.yml`, () => {
  const rows = tableAfter(readFileSync(join(REPO_ROOT, DOC), "utf8"), HEADING);

  test("the table has a row for every observability container that mounts a config, and only those", () => {
    const mountingConfigs = Object.entries(compose.services)
      .filter(([name]) => !NOT_OBSERVABILITY.has(name))
      .filter(([, service]) => (service.volumes ?? []).some((v) => sourceOf(shortSyntax(v))?.startsWith("./configs/")))
      .map(([name]) => name);
    expect(mountingConfigs.length, "the compose scan finds the observability containers").toBeGreaterThanOrEqual(6);
    const documented = rows.map((row) => row.container);
    const missing = mountingConfigs.filter((name) => !documented.includes(name));
    const extra = rows.filter((row) => !mountingConfigs.includes(row.container));
    expect(missing, `${DOC}: no row for these compose services that mount configs/`).toEqual([]);
    expect(
      extra.map((row) => `row "${row.container}" (${row.where})`),
      `${DOC}: rows for no compose service that mounts configs/`,
    ).toEqual([]);
  });

  test.each(rows.map((row) => [row.container, row] as const))(
    "row %s: image, volumes and command are docker-compose.yml's",
    (_container, row) => {
      expect(mismatches(row)).toEqual([]);
    },
  );

  test("the checks catch a drifted row (guards the comparison)", () => {
    const tempo = rows.find((row) => row.container === "tempo");
    expect(tempo, `${DOC}: no row "tempo"`).toBeDefined();
    const drifted = { ...(tempo as Row), volumes: ["./configs/tempo/tempo.yaml:/etc/tempo.yaml:ro"], command: [] };
    const problems = mismatches(drifted);
    expect(problems).toContainEqual(
      expect.stringMatching(/^row "tempo" .*volume `\.\/configs\/tempo\/tempo\.yaml:\/etc\/tempo\.yaml:ro`/),
    );
    expect(problems).toContainEqual(expect.stringMatching(/^row "tempo" .*mounts `tempo-data:\/var\/tempo`/));
    expect(problems).toContainEqual(expect.stringMatching(/^row "tempo" .*runs it with `-config\.file=/));
  });
});
