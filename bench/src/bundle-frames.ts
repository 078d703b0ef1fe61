/**
 * Services run bundled (scripts/bundle.mjs: one dist/bundle/index.js per service), so a profile's frames all name
 * that one file. Each bundle has a source map beside it; through it a frame is put back where its code came from
 * (node_modules/.pnpm/zod@…/…, pkg/flow/src/…), so that the summaries charge time and allocations to packages and
 * functions as they would for an unbundled service.
 */
import { existsSync, readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

export interface Frame {
  url: string;
  /** 0-based, as V8 reports them. */
  lineNumber: number;
  columnNumber?: number;
}

const BUNDLE = /\/dist\/bundle\/[^/]+\.js$/;

/** Rewrites, in place, every frame of a bundle that has a linked source map to the source it was bundled from.
 *  Frames elsewhere, and positions the map does not cover, are left as they are. */
export function unbundleFrames(frames: Iterable<Frame>): void {
  const maps = new Map<string, { map: SourceMap; base: URL } | undefined>();
  for (const frame of frames) {
    if (!BUNDLE.test(frame.url)) continue;
    if (!maps.has(frame.url)) maps.set(frame.url, loadMap(frame.url));
    const found = maps.get(frame.url);
    if (!found || frame.columnNumber === undefined) continue;
    const entry = found.map.findEntry(frame.lineNumber, frame.columnNumber) as {
      originalSource?: string;
      originalLine?: number;
    };
    if (!entry.originalSource) continue;
    frame.url = new URL(entry.originalSource, found.base).href;
    frame.lineNumber = entry.originalLine ?? frame.lineNumber;
  }
}

function loadMap(url: string): { map: SourceMap; base: URL } | undefined {
  const path = url.startsWith("file:") ? fileURLToPath(url) : url;
  const mapPath = `${path}.map`;
  if (!existsSync(mapPath)) return undefined;
  try {
    return { map: new SourceMap(JSON.parse(readFileSync(mapPath, "utf8"))), base: pathToFileURL(mapPath) };
  } catch {
    return undefined;
  }
}
