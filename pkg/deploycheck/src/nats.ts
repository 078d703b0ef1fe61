/** A NATS connection as one service's user, for the permission tests. */
import { connect, type NatsConnection } from "nats";

export function connectAs(url: string, user: string, pass: string): Promise<NatsConnection> {
  return connect({ servers: url, user, pass, reconnect: false, timeout: 2_000 });
}

export type { NatsConnection } from "nats";
