/**
 * The standard grpc.health.v1.Health service, backed by a small in-process registry.
 * "" is the overall server status; other keys are service names such as "taskmanager.v1.TaskService".
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "./gen/grpc/health/v1/health_pb.js";
import { addService } from "./grpc-adapter.js";

export { ServingStatus };

export class HealthRegistry {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #watchers = new Set<() => void>();

  set(service: string, status: ServingStatus): void {
    this.#statuses.set(service, status);
    for (const wake of this.#watchers) wake();
  }

  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** Marks every registered service NOT_SERVING (used when shutting down so balancers drain us first). */
  shutdown(): void {
    for (const service of this.#statuses.keys()) this.set(service, ServingStatus.NOT_SERVING);
  }

  addTo(server: grpc.Server): void {
    addService(server, Health, {
      check: async (request) => {
        const status = this.#statuses.get(request.service);
        if (status === undefined) throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
        return { status };
      },
      list: async () => ({
        statuses: Object.fromEntries([...this.#statuses].map(([name, status]) => [name, { status }])),
      }),
      watch: (request, ctx) => this.#watch(request.service, ctx.signal),
    });
  }

  async *#watch(service: string, signal: AbortSignal) {
    let last: ServingStatus | undefined;
    while (!signal.aborted) {
      const current = this.#statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
      if (current !== last) {
        last = current;
        yield { status: current };
        // Re-read before waiting: set() may have run while we were suspended at the yield (e.g. back-pressure).
        continue;
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#watchers.delete(wake);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        this.#watchers.add(wake);
        signal.addEventListener("abort", wake, { once: true });
      });
    }
  }
}
