/**
 * A publish's NATS headers, encoded once into NATS's wire format.
 *
 * nats.js's `MsgHdrs` canonicalizes each key character by character and looks it up twice per `set`, validates the
 * value, and builds the block by concatenation when the message is written: 7–8 % of what the scheduler allocated
 * per message (docs/PERFORMANCE.md). What nats.js reads of a publish's headers is their encoding alone (its
 * `protocol.publish` calls `encode()` and nothing else, also for `js.publish`, which touches them only to add
 * options such as `msgID` that we set here ourselves), so a block written once serves, retries included.
 */
import type { MsgHdrs } from "nats";

/** What nats.js reads of a publish's headers: their encoding. */
export interface EncodedHeaders {
  encode(): Uint8Array;
}

const encoder = new TextEncoder();
/** A header key: printable ASCII without space or colon (RFC 5322's field name, as nats.js checks it). */
const HEADER_KEY = /^[!-9;-~]+$/;

/**
 * The block `NATS/1.0`, one `Key: value` line per entry, and an empty line. Keys must be header tokens, and values
 * may not hold CR or LF: a value that did would end its line early and could forge the next header. Both are refused.
 */
export function encodeHeaders(entries: ReadonlyArray<readonly [string, string]>): EncodedHeaders {
  let block = "NATS/1.0\r\n";
  for (const [key, value] of entries) {
    if (!HEADER_KEY.test(key)) throw new Error(`invalid header key ${JSON.stringify(key)}`);
    if (/[\r\n]/.test(value)) throw new Error(`invalid value of header ${key}: CR and LF are not allowed`);
    block += `${key}: ${value}\r\n`;
  }
  const bytes = encoder.encode(`${block}\r\n`);
  return { encode: () => bytes };
}

/** The encoded block where nats.js's publish options type a `MsgHdrs` (it reads only `encode()` of it). */
export function asMsgHdrs(headers: EncodedHeaders): MsgHdrs {
  return headers as unknown as MsgHdrs;
}
