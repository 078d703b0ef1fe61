/**
 * WORKER_GATEWAY_TLS_*: ctx.submitTask's client over TLS to a gRPC server with a throwaway CA that asks for a client
 * certificate (a proxy terminating TLS in front of the gateways): with the files, a child is submitted; without the
 * CA, the attempt's failure names the certificate. A worker started with the files submits its handler's child over
 * TLS. At start, a file that cannot be used, a certificate without its key, or an http:// WORKER_GATEWAY_URL stops
 * the worker, naming the setting.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { ConfigError } from "@tm/kit";
import { addService, type SubmitTaskRequest, TaskService } from "@tm/proto";
import { createTlsFiles, startGrpcServer, type TlsFiles, useInfra, waitFor } from "@tm/testkit";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { attemptChildTasks } from "../src/child-tasks.js";
import { grpcChildSubmitter } from "../src/gateway-child-submitter.js";
import { gatewayTls } from "../src/gateway-tls.js";
import { enrichedTask, publishTask, StreamReader, startWorker } from "./support.js";

let files: TlsFiles;
let server: grpc.Server;
let baseUrl: string;
const submitted: SubmitTaskRequest[] = [];

beforeAll(async () => {
  files = createTlsFiles();
  const [ca, cert, key] = [files.caFile, files.certFile, files.keyFile].map((file) => readFileSync(file)) as [
    Buffer,
    Buffer,
    Buffer,
  ];
  const handlers: Record<string, (request: never) => Promise<unknown>> = Object.fromEntries(
    TaskService.methods.map((method) => [method.localName, async () => ({})]),
  );
  handlers.submitTask = async (request: SubmitTaskRequest) => {
    submitted.push(request);
    return { taskId: `child-${submitted.length}` };
  };
  ({ server, url: baseUrl } = await startGrpcServer((s) => addService(s, TaskService, handlers as never), {
    tls: { ca, cert, key },
    requireClientCert: true,
  }));
});
afterAll(() => {
  server?.forceShutdown();
  files?.dispose();
});

const PARENT = { taskId: crypto.randomUUID(), priority: "medium" as const };
const call = () => ({ signal: new AbortController().signal });

test("with the CA and a client certificate, a child is submitted over TLS; without the CA, the failure names it", async () => {
  const tls = gatewayTls({
    WORKER_GATEWAY_URL: baseUrl,
    WORKER_GATEWAY_TLS_CA_FILE: files.caFile,
    WORKER_GATEWAY_TLS_CERT_FILE: files.certFile,
    WORKER_GATEWAY_TLS_KEY_FILE: files.keyFile,
  });
  expect(tls).toMatchObject({ ca: expect.stringContaining("BEGIN CERTIFICATE") });
  const submitter = grpcChildSubmitter({ baseUrl, ...(tls ? { tls } : {}), batchSize: 10 });
  const child = await attemptChildTasks(submitter, PARENT, call()).submitTask({ type: "echo", payload: { n: 1 } });
  expect(child).toEqual({ taskId: "child-1", deduplicated: false });
  expect(submitted[0]).toMatchObject({ type: "echo", parentTaskId: PARENT.taskId });

  const { cert, key } = tls ?? {};
  const untrusted = grpcChildSubmitter({
    baseUrl,
    tls: { ...(cert ? { cert } : {}), ...(key ? { key } : {}) },
    batchSize: 10,
  });
  await expect(attemptChildTasks(untrusted, PARENT, call()).submitTask({ type: "echo" })).rejects.toThrow(
    /certificate/i,
  );
  expect(submitted).toHaveLength(1);
});

test("at start: an unusable file, a certificate without its key, or an http:// address is named", () => {
  const https = { WORKER_GATEWAY_URL: "https://envoy:50051" };
  expect(gatewayTls(https)).toBeUndefined();
  expect(() => gatewayTls({ ...https, WORKER_GATEWAY_TLS_CA_FILE: "/no/such/ca.pem" })).toThrow(
    new ConfigError(
      "WORKER_GATEWAY_TLS_CA_FILE: cannot read /no/such/ca.pem: ENOENT: no such file or directory, open '/no/such/ca.pem'",
    ),
  );
  expect(() => gatewayTls({ ...https, WORKER_GATEWAY_TLS_CA_FILE: files.keyFile })).toThrow(
    /WORKER_GATEWAY_TLS_CA_FILE: .* holds no PEM certificate/,
  );
  expect(() => gatewayTls({ ...https, WORKER_GATEWAY_TLS_CERT_FILE: files.certFile })).toThrow(
    "WORKER_GATEWAY_TLS_CERT_FILE and WORKER_GATEWAY_TLS_KEY_FILE go together: a client certificate needs its key",
  );
  expect(() =>
    gatewayTls({ WORKER_GATEWAY_URL: "http://envoy:50051", WORKER_GATEWAY_TLS_CA_FILE: files.caFile }),
  ).toThrow("WORKER_GATEWAY_TLS_*_FILE need an https:// WORKER_GATEWAY_URL (got http://envoy:50051)");
});

describe("a worker with WORKER_GATEWAY_TLS_*", () => {
  const infra = useInfra();
  const dir = mkdtempSync(join(tmpdir(), "tm-gateway-tls-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const modulePath = join(dir, "handlers.mjs");
  writeFileSync(
    modulePath,
    `export default [{ type: "fanout", async run(_p, ctx) { return { child: (await ctx.submitTask({ type: "echo" })).taskId }; } }];`,
  );
  const env = () => ({
    TASK_TYPES: "fanout",
    WORKER_HANDLER_MODULES: modulePath,
    WORKER_GATEWAY_URL: baseUrl,
    WORKER_GATEWAY_TLS_CA_FILE: files.caFile,
    WORKER_GATEWAY_TLS_CERT_FILE: files.certFile,
    WORKER_GATEWAY_TLS_KEY_FILE: files.keyFile,
  });

  test("submits its handler's child over TLS", async () => {
    const worker = await startWorker(infra, env());
    const nc = await connect({ servers: infra.nats.url });
    try {
      const tasks = new StreamReader(await nc.jetstreamManager(), "TASKS");
      const task = enrichedTask("fanout", {});
      const before = submitted.length;
      await publishTask(nc, task);
      await waitFor("the fanout task's result", async () => {
        await tasks.refresh();
        return tasks.results(task.taskId).length > 0;
      });
      expect(tasks.results(task.taskId)[0]?.output).toEqual({ child: `child-${before + 1}` });
      expect(submitted.at(-1)).toMatchObject({ type: "echo", parentTaskId: task.taskId });
    } finally {
      await nc.drain();
      await worker.stop();
    }
  });

  test("does not start with the files and an http:// WORKER_GATEWAY_URL", async () => {
    await expect(startWorker(infra, { ...env(), WORKER_GATEWAY_URL: "http://127.0.0.1:1" })).rejects.toThrow(
      "WORKER_GATEWAY_TLS_*_FILE need an https:// WORKER_GATEWAY_URL (got http://127.0.0.1:1)",
    );
  });
});
