/**
 * Spans out of an OTLP/HTTP trace export (`POST /v1/traces`, ExportTraceServiceRequest), as protobuf (what the kit's
 * exporter sends) or JSON: the few fields the tests and the benchmark's latency breakdown read. The protobuf is read
 * with @bufbuild/protobuf's wire reader (opentelemetry/proto/trace/v1 field numbers); no generated OTLP code.
 */
import { BinaryReader, type WireType } from "@bufbuild/protobuf/wire";

export interface ReceivedSpan {
  service: string;
  scope: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  /** The spans this one links to (another trace's span that caused it, e.g. the batch call a task came in). */
  links: Array<{ traceId: string; spanId: string }>;
  /** Start and end, in milliseconds since the epoch (fractional: OTLP carries nanoseconds). */
  startMs: number;
  endMs: number;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpTraces {
  resourceSpans?: Array<{
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans?: Array<{
      scope?: { name?: string };
      spans?: Array<{
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        kind: number;
        attributes?: OtlpAttribute[];
        links?: Array<{ traceId: string; spanId: string }>;
        startTimeUnixNano?: string | number;
        endTimeUnixNano?: string | number;
      }>;
    }>;
  }>;
}

/** The spans of one export request body, by its content type (protobuf or JSON); throws for any other type. */
export function spansOfTraceExport(body: Uint8Array, contentType: string): ReceivedSpan[] {
  if (contentType.includes("json")) return flatten(JSON.parse(Buffer.from(body).toString("utf8")) as OtlpTraces);
  if (contentType.includes("protobuf")) return flatten(decodeTraces(body));
  throw new Error(`an OTLP trace export is protobuf or JSON, not ${contentType}`);
}

/** OTLP's uint64 nanoseconds (a decimal string in JSON and from the wire reader) → fractional milliseconds. */
function nanosToMs(nanos: string | number | undefined): number {
  if (nanos === undefined) return 0;
  const big = BigInt(nanos);
  return Number(big / 1_000_000n) + Number(big % 1_000_000n) / 1e6;
}

function flatten(body: OtlpTraces): ReceivedSpan[] {
  return (body.resourceSpans ?? []).flatMap((rs) => {
    const service = String(attributes(rs.resource?.attributes)["service.name"] ?? "");
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((span) => ({
        service,
        scope: ss.scope?.name ?? "",
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId ?? "",
        name: span.name,
        kind: span.kind,
        attributes: attributes(span.attributes),
        links: (span.links ?? []).map(({ traceId, spanId }) => ({ traceId, spanId })),
        startMs: nanosToMs(span.startTimeUnixNano),
        endMs: nanosToMs(span.endTimeUnixNano),
      })),
    );
  });
}

function attributes(list: OtlpAttribute[] = []): Record<string, unknown> {
  return Object.fromEntries(
    list.map(({ key, value }) => [
      key,
      value.stringValue ??
        (value.intValue !== undefined ? Number(value.intValue) : (value.doubleValue ?? value.boolValue)),
    ]),
  );
}

/** ExportTraceServiceRequest (protobuf) → the JSON shape above, for the fields the tests read. */
function decodeTraces(bytes: Uint8Array): OtlpTraces {
  const resourceSpans: ResourceSpans[] = [];
  fields(bytes, (no, r) => {
    if (no !== 1) return false;
    resourceSpans.push(resourceSpansOf(r.bytes()));
    return true;
  });
  return { resourceSpans };
}

type ResourceSpans = NonNullable<OtlpTraces["resourceSpans"]>[number];
type ScopeSpans = NonNullable<ResourceSpans["scopeSpans"]>[number];

function resourceSpansOf(bytes: Uint8Array): ResourceSpans {
  const attributes: OtlpAttribute[] = [];
  const scopeSpans: ScopeSpans[] = [];
  fields(bytes, (no, r) => {
    if (no === 1) {
      fields(r.bytes(), (resourceNo, rr) => {
        if (resourceNo !== 1) return false;
        attributes.push(keyValue(rr.bytes()));
        return true;
      });
    } else if (no === 2) scopeSpans.push(scopeSpansOf(r.bytes()));
    else return false;
    return true;
  });
  return { resource: { attributes }, scopeSpans };
}

function scopeSpansOf(bytes: Uint8Array): ScopeSpans {
  let name = "";
  const spans: Span[] = [];
  fields(bytes, (no, r) => {
    if (no === 1) {
      fields(r.bytes(), (scopeNo, sr) => {
        if (scopeNo !== 1) return false;
        name = sr.string();
        return true;
      });
    } else if (no === 2) spans.push(span(r.bytes()));
    else return false;
    return true;
  });
  return { scope: { name }, spans };
}

type Span = NonNullable<
  NonNullable<NonNullable<OtlpTraces["resourceSpans"]>[number]["scopeSpans"]>[number]["spans"]
>[number];

function span(bytes: Uint8Array): Span {
  const out: Span = { traceId: "", spanId: "", name: "", kind: 0, attributes: [], links: [] };
  fields(bytes, (no, r) => {
    if (no === 1) out.traceId = hex(r.bytes());
    else if (no === 2) out.spanId = hex(r.bytes());
    else if (no === 4) out.parentSpanId = hex(r.bytes());
    else if (no === 5) out.name = r.string();
    else if (no === 6) out.kind = r.int32();
    else if (no === 7) out.startTimeUnixNano = String(r.fixed64());
    else if (no === 8) out.endTimeUnixNano = String(r.fixed64());
    else if (no === 9) out.attributes?.push(keyValue(r.bytes()));
    else if (no === 13) out.links?.push(link(r.bytes()));
    else return false;
    return true;
  });
  return out;
}

/** Span.Link: the linked span's trace and span ids (its trace state and attributes are not read). */
function link(bytes: Uint8Array): { traceId: string; spanId: string } {
  const out = { traceId: "", spanId: "" };
  fields(bytes, (no, r) => {
    if (no === 1) out.traceId = hex(r.bytes());
    else if (no === 2) out.spanId = hex(r.bytes());
    else return false;
    return true;
  });
  return out;
}

function keyValue(bytes: Uint8Array): OtlpAttribute {
  const kv: OtlpAttribute = { key: "", value: {} };
  fields(bytes, (no, r) => {
    if (no === 1) kv.key = r.string();
    else if (no === 2) kv.value = anyValue(r.bytes());
    else return false;
    return true;
  });
  return kv;
}

function anyValue(bytes: Uint8Array): OtlpValue {
  const value: OtlpValue = {};
  fields(bytes, (no, r) => {
    if (no === 1) value.stringValue = r.string();
    else if (no === 2) value.boolValue = r.bool();
    else if (no === 3) value.intValue = String(r.int64());
    else if (no === 4) value.doubleValue = r.double();
    else return false; // arrays, key-value lists and bytes: not read by the tests
    return true;
  });
  return value;
}

/** Calls `read` for each field of a message; a field it does not consume (returns false) is skipped. */
function fields(bytes: Uint8Array, read: (fieldNo: number, reader: BinaryReader) => boolean): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    const start = reader.pos;
    if (!read(fieldNo, reader)) {
      reader.pos = start;
      reader.skip(wireType as WireType, fieldNo);
    }
  }
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
