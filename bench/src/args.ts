/** Command-line flags of `pnpm bench`. A bad flag stops with a message naming it. */
import { DRAINABLE, type Drainable } from "./drain.js";
import { ALL_SYSTEMS, type SystemName } from "./run.js";
import { SIZES, type SizeName } from "./sizes.js";
import {
  CLIENT_FLOWS,
  type ClientFlow,
  type ConcurrencyKeys,
  combineProblem,
  type FairnessKeys,
  NO_CONCURRENCY_KEYS,
  NO_FAIRNESS_KEYS,
  TELEMETRY_MODES,
  type TelemetryMode,
} from "./systems/pipeline.js";

export interface CliOptions {
  size: SizeName;
  only: SystemName[];
  workers: number;
  gateways: number;
  /** --combine a,b,...: services run together in one services/combined process. */
  combine: string[];
  scaling: boolean;
  out: string;
  help: boolean;
  /** --soak SECONDS: run the pipeline soak instead of the comparison. */
  soak?: number;
  /** --soak-rate N: the soak's offered tasks/s (skips measuring the peak). */
  soakRate?: number;
  /** --telemetry on|off|export: what the pipeline's services do with OpenTelemetry (TelemetryMode). */
  telemetry: TelemetryMode;
  /** --reference-rate N: the open loops' rates are fractions of N tasks/s instead of the first measured peak. */
  referenceRate?: number;
  /** --client-flow two-calls|one-call: how the driver submits and follows a pipeline task (ClientFlow). */
  clientFlow: ClientFlow;
  /** --redis-replicas N: Redis replicas beside the pipeline's Redis, writes waited for (REDIS_WAIT_REPLICAS). */
  redisReplicas: number;
  /** --concurrency-keys N:L: the pipeline's tasks spread over N concurrency keys of limit L (0: none). */
  concurrencyKeys: ConcurrencyKeys;
  /** --fairness-keys N:W: the pipeline's tasks spread over N fairness keys, through a window of W (0: none). */
  fairnessKeys: FairnessKeys;
  /** --breakdown: where a task's latency goes, from its exported spans, instead of the comparison. */
  breakdown: boolean;
  /** --breakdown-rate N: the breakdown's tasks paced at N/s instead of one at a time. */
  breakdownRate?: number;
  /** Whether --telemetry was given (--breakdown exports, and refuses another setting). */
  telemetryGiven: boolean;
  /** --drain SERVICE: CPU per message of one service draining a stream, beside a bare consumer. */
  drain?: Drainable;
  /** --bare-fetch N: with --drain, the bare consumer pulls N messages at a time with fetch() instead of keeping one
   *  consume() subscription (what the services' consume loop does when N slots are free). */
  bareFetch?: number;
  /** --instructions: with --drain, count each consumer's instructions per message under valgrind's callgrind. */
  instructions: boolean;
  /** --profile: run every service under node --cpu-prof and summarise each profile when the run ends. */
  profile: boolean;
  /** --alloc-profile: record every service's allocations (V8's sampling heap profiler) and summarise them. */
  allocProfile: boolean;
}

export const USAGE = `Usage: pnpm bench [-- flags]
  --size small|medium|large   work per phase (default medium; small < 60 s, for CI)
  --only raw,raw-flow,bullmq,pipeline
                              systems to measure (default all; raw-flow = the contract's 14 messages per task in
                              bare nats.js, no application work: the ceiling of any implementation of the contract)
  --workers N                 worker replicas in the pipeline (default 1)
  --gateways N                gateway replicas in the pipeline (default 1)
  --combine a,b,...           run these pipeline services in one process (services/combined), e.g.
                              scheduler,result-store,notifier,audit,deadletter; the others one process each
  --scaling                   also measure the pipeline with workers 1/2/4 and gateways 1/2
  --soak SECONDS              instead: soak the pipeline for SECONDS at 50% of its measured peak, sampling VmRSS
                              per process and throughput/latency every 15 s (--size sets the warm-up and peak phase)
  --soak-rate N               with --soak: offer N tasks/s instead of measuring the peak
  --telemetry on|off|export   the pipeline's OpenTelemetry: on = SDK and instrumentations, no exporter (default);
                              off = OTEL_SDK_DISABLED=true; export = spans and metrics exported over OTLP to a sink
                              in this process that discards them (what a deployment with a collector pays)
  --reference-rate N          the open loops run at 25/50/75% of N tasks/s instead of the first measured peak, so
                              runs (e.g. two --client-flow settings) compare at the same offered rates
  --client-flow two-calls|one-call
                              how the driver runs a pipeline task: two-calls = SubmitTask, then StreamTaskStatus
                              (default; what the headline figures use); one-call = SubmitTaskAndStreamStatus
  --redis-replicas N          start N Redis replicas beside the pipeline's Redis, every service waiting for them
                              to hold its writes before it acks (REDIS_WAIT_REPLICAS=N): what that durability costs
  --breakdown                 instead: where a task's latency goes, hop by hop (the pipeline only, every span
                              exported to this process): tasks one at a time after a warm-up
  --breakdown-rate N          with --breakdown: the tasks paced at N tasks/s instead of one at a time
  --drain SERVICE             instead: CPU per message of one service (${DRAINABLE.join(", ")}) draining a batch
                              of its messages on fresh servers, beside a bare consumer (receive, parse, ack; for
                              the scheduler also its three publishes, for the result-store its audit event);
                              --size sets the batch (small 5,000, medium 20,000, large 50,000 messages)
  --bare-fetch N              with --drain: the bare consumer pulls N messages at a time with fetch(), as the
                              services' consume loop does when N slots are free, instead of one consume()
                              subscription (what small pulls cost the server)
  --instructions              with --drain: run each consumer under valgrind's callgrind and count the
                              instructions it executes per message of the measured batch (independent of the
                              machine's load, unlike CPU time; ~75× slower, so use --size small); files in
                              OUT/callgrind-<time>/
  --profile                   also: start every pipeline service with node --cpu-prof (any kind of run above);
                              when the run ends, print where each service's CPU went (GC, start-up, socket
                              writes, top packages and functions) and keep the .cpuprofile files (flame graphs
                              in Chrome DevTools or speedscope) in OUT/profiles-<time>/
  --alloc-profile             also: record where every pipeline service allocates (V8's sampling heap profiler,
                              freed objects included; any kind of run above); when the run ends, print each
                              service's allocated MB after start-up (per message with --drain, per task with
                              --only pipeline) and its top packages and functions; the .heapprofile files
                              stay in OUT/alloc-<time>/
  --concurrency-keys N:L      the pipeline's tasks spread round robin over N concurrency keys, each of limit L
                              (SubmitTaskRequest.concurrency_key): what admitting and releasing them costs
  --fairness-keys N:W         the pipeline's tasks spread round robin over N fairness keys, through a window of W
                              tasks in the pipeline (GATEWAY_FAIRNESS_WINDOW): what taking turns costs
  --out DIR                   where the JSON goes (default bench-results at the repository root)
  --no-build                  skip building (start.mjs builds @tm/bench, its dependencies and the services)
Requires nats-server and redis-server on PATH; the pipeline needs \`pnpm build\`.`;

/** `--concurrency-keys N:L`: N keys (1 to 100,000), each of limit L (1 to 1,000, the gateway's maximum). */
export function parseConcurrencyKeys(value: string | undefined): ConcurrencyKeys {
  const match = /^(\d+):(\d+)$/.exec(value ?? "");
  const keys = Number(match?.[1]);
  const limit = Number(match?.[2]);
  if (!match || keys < 1 || keys > 100_000 || limit < 1 || limit > 1_000)
    throw new Error(
      `--concurrency-keys needs N:L, N keys from 1 to 100000 and a limit L from 1 to 1000, got ${JSON.stringify(value)}`,
    );
  return { keys, limit };
}

/** `--fairness-keys N:W`: N keys (1 to 100,000), a window of W (1 to 100,000, the gateway's maximum). */
export function parseFairnessKeys(value: string | undefined): FairnessKeys {
  const match = /^(\d+):(\d+)$/.exec(value ?? "");
  const keys = Number(match?.[1]);
  const window = Number(match?.[2]);
  if (!match || keys < 1 || keys > 100_000 || window < 1 || window > 100_000)
    throw new Error(
      `--fairness-keys needs N:W, N keys from 1 to 100000 and a window W from 1 to 100000, got ${JSON.stringify(value)}`,
    );
  return { keys, window };
}

function positiveInt(flag: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

function positiveNumber(flag: string, value: string | undefined): number {
  const n = Number(value);
  if (value === undefined || value.trim() === "" || !Number.isFinite(n) || n <= 0)
    throw new Error(`${flag} needs a positive number, got ${JSON.stringify(value)}`);
  return n;
}

export function parseArgs(argv: readonly string[], defaultOut: string): CliOptions {
  const options: CliOptions = {
    size: "medium",
    only: [...ALL_SYSTEMS],
    workers: 1,
    gateways: 1,
    combine: [],
    scaling: false,
    out: defaultOut,
    help: false,
    telemetry: "on",
    clientFlow: "two-calls",
    redisReplicas: 0,
    concurrencyKeys: NO_CONCURRENCY_KEYS,
    fairnessKeys: NO_FAIRNESS_KEYS,
    breakdown: false,
    telemetryGiven: false,
    profile: false,
    allocProfile: false,
    instructions: false,
  };
  let onlyGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string;
    const [name, inline] = flag.includes("=") ? flag.split("=", 2) : [flag, undefined];
    const value = () => inline ?? argv[++i];
    switch (name) {
      case "--":
        break;
      case "--size": {
        const size = value();
        if (!size || !(size in SIZES)) throw new Error(`--size must be one of ${Object.keys(SIZES).join(", ")}`);
        options.size = size as SizeName;
        break;
      }
      case "--only": {
        const names = (value() ?? "").split(",").filter(Boolean);
        const unknown = names.filter((n) => !ALL_SYSTEMS.includes(n as SystemName));
        if (names.length === 0 || unknown.length > 0)
          throw new Error(
            `--only takes a list of ${ALL_SYSTEMS.join(",")}; unknown: ${unknown.join(",") || "(empty)"}`,
          );
        options.only = names as SystemName[];
        onlyGiven = true;
        break;
      }
      case "--workers":
        options.workers = positiveInt("--workers", value());
        break;
      case "--gateways":
        options.gateways = positiveInt("--gateways", value());
        break;
      case "--combine":
        options.combine = (value() ?? "").split(",").map((name) => name.trim());
        break;
      case "--scaling":
        options.scaling = true;
        break;
      case "--soak":
        options.soak = positiveInt("--soak", value());
        break;
      case "--soak-rate":
        options.soakRate = positiveNumber("--soak-rate", value());
        break;
      case "--telemetry": {
        const setting = value();
        if (!TELEMETRY_MODES.includes(setting as TelemetryMode))
          throw new Error(`--telemetry must be one of ${TELEMETRY_MODES.join(", ")}, got ${JSON.stringify(setting)}`);
        options.telemetry = setting as TelemetryMode;
        options.telemetryGiven = true;
        break;
      }
      case "--reference-rate":
        options.referenceRate = positiveNumber("--reference-rate", value());
        break;
      case "--client-flow": {
        const flow = value();
        if (!CLIENT_FLOWS.includes(flow as ClientFlow))
          throw new Error(`--client-flow must be one of ${CLIENT_FLOWS.join(", ")}, got ${JSON.stringify(flow)}`);
        options.clientFlow = flow as ClientFlow;
        break;
      }
      case "--redis-replicas": {
        const raw = value();
        const n = Number(raw);
        if (!Number.isInteger(n) || n < 0 || n > 5)
          throw new Error(`--redis-replicas needs a whole number from 0 to 5, got ${JSON.stringify(raw)}`);
        options.redisReplicas = n;
        break;
      }
      case "--concurrency-keys":
        options.concurrencyKeys = parseConcurrencyKeys(value());
        break;
      case "--fairness-keys":
        options.fairnessKeys = parseFairnessKeys(value());
        break;
      case "--breakdown":
        options.breakdown = true;
        break;
      case "--breakdown-rate":
        options.breakdownRate = positiveNumber("--breakdown-rate", value());
        break;
      case "--drain": {
        const service = value();
        if (!DRAINABLE.includes(service as Drainable))
          throw new Error(`--drain must be one of ${DRAINABLE.join(", ")}, got ${JSON.stringify(service)}`);
        options.drain = service as Drainable;
        break;
      }
      case "--bare-fetch":
        options.bareFetch = positiveInt("--bare-fetch", value());
        break;
      case "--instructions":
        options.instructions = true;
        break;
      case "--profile":
        options.profile = true;
        break;
      case "--alloc-profile":
        options.allocProfile = true;
        break;
      case "--out":
        options.out = value() ?? defaultOut;
        break;
      case "--help":
      case "-h":
        options.help = true;
        break;
      default:
        throw new Error(`unknown flag ${flag}\n${USAGE}`);
    }
  }
  if (options.profile && /\s/.test(options.out))
    throw new Error(
      `--profile writes into --out, which must not contain spaces (node flags are split on them): ${JSON.stringify(options.out)}`,
    );
  const combineError = combineProblem(options);
  if (combineError) throw new Error(combineError);
  if (options.combine.length > 0 && options.scaling)
    throw new Error("--combine and --scaling cannot be used together (scaling varies the replicas)");
  if (options.soakRate !== undefined && options.soak === undefined)
    throw new Error("--soak-rate only applies with --soak SECONDS");
  if (options.soak !== undefined) {
    if (options.scaling) throw new Error("--soak runs the pipeline soak only; it cannot be combined with --scaling");
    if (onlyGiven && !(options.only.length === 1 && options.only[0] === "pipeline"))
      throw new Error("--soak measures the pipeline only; --only may be omitted or be exactly pipeline");
  }
  if (options.drain !== undefined) {
    if (options.breakdown || options.soak !== undefined || options.scaling || onlyGiven)
      throw new Error(
        "--drain is a run of its own; it cannot be combined with --breakdown, --soak, --scaling or --only",
      );
    if (options.combine.length > 0) throw new Error("--drain runs one service alone; --combine does not apply");
  }
  if (
    options.referenceRate !== undefined &&
    (options.drain !== undefined || options.breakdown || options.soak !== undefined)
  )
    throw new Error(
      "--reference-rate applies to the comparison only (not --drain, --breakdown or --soak: see --soak-rate)",
    );
  if (options.bareFetch !== undefined && options.drain === undefined)
    throw new Error("--bare-fetch only applies with --drain");
  if (options.instructions && options.drain === undefined) throw new Error("--instructions only applies with --drain");
  if (options.instructions && (options.profile || options.allocProfile))
    throw new Error("--instructions cannot be combined with --profile or --alloc-profile (they would be counted too)");
  if (options.breakdownRate !== undefined && !options.breakdown)
    throw new Error("--breakdown-rate only applies with --breakdown");
  if (options.breakdown) {
    if (options.soak !== undefined || options.scaling)
      throw new Error("--breakdown is a run of its own; it cannot be combined with --soak or --scaling");
    if (onlyGiven && !(options.only.length === 1 && options.only[0] === "pipeline"))
      throw new Error("--breakdown measures the pipeline only; --only may be omitted or be exactly pipeline");
    if (options.telemetryGiven && options.telemetry !== "export")
      throw new Error("--breakdown reads the exported spans: --telemetry may be omitted or be export");
  }
  return options;
}
