/** A NATS connection as one service's user, for the permission tests. */
import { connect, type NatsConnection } from "nats";

/** As that service connects: its user, and its own inbox (`_INBOX_<user>`, the only one its permissions allow). */
export function connectAs(
  url: string,
  user: string,
  pass: string,
  { inboxPrefix = `_INBOX_${user}` }: { inboxPrefix?: string } = {},
): Promise<NatsConnection> {
  return connect({ servers: url, user, pass, reconnect: false, timeout: 2_000, inboxPrefix });
}

export type { NatsConnection } from "nats";
