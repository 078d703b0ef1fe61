/**
 * The TypeScript the docs show for TaskManagerClient is quoted from docs/examples/client.ts, which `pnpm typecheck`
 * compiles: each snippet's lines appear there, in the same order, so a snippet cannot drift from the client's API.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "@tm/testkit";
import { expect, test } from "vitest";

const EXAMPLE = "docs/examples/client.ts";

/** The ```ts blocks of a Markdown file that use TaskManagerClient. */
function clientSnippets(file: string): string[] {
  const text = readFileSync(join(REPO_ROOT, file), "utf8");
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((match) => match[1] ?? "")
    .filter((block) => block.includes("TaskManagerClient"));
}

const linesOf = (text: string) =>
  text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "");

/** The first line of `snippet` not found in `source` after the previous one, or undefined when all are. */
function firstMissing(snippet: string, source: string[]): string | undefined {
  let from = 0;
  for (const line of linesOf(snippet)) {
    const at = source.indexOf(line, from);
    if (at < 0) return line;
    from = at + 1;
  }
  return undefined;
}

test.each(["README.md", "docs/CLIENT.md"])("%s quotes its TaskManagerClient code from the compiled example", (file) => {
  const source = linesOf(readFileSync(join(REPO_ROOT, EXAMPLE), "utf8"));
  const snippets = clientSnippets(file);
  expect(snippets.length).toBeGreaterThan(0);
  for (const snippet of snippets) expect(firstMissing(snippet, source), `${file} vs ${EXAMPLE}`).toBeUndefined();
});

test("a line the example does not have is found", () => {
  expect(firstMissing("const a = 1;\nconst b = 2;", ["const a = 1;"])).toBe("const b = 2;");
  expect(firstMissing("const b = 2;\nconst a = 1;", ["const a = 1;", "const b = 2;"])).toBe("const a = 1;");
});
