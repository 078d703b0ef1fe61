/**
 * NATS_CREDS_FILE: a user's credentials for a nats-server in operator mode (decentralised JWT auth), as `nsc generate
 * creds` writes them: the user's JWT, then its NKEY seed, each between marker lines. Checked at start, naming the
 * variable (the server would only answer "Authorization Violation"); read again at every (re)connection, so that a
 * renewed file (a short-lived JWT that whoever issues it replaces) is taken up without a restart.
 */
import { readFileSync } from "node:fs";
import { nkeys } from "nats";
import type { Logger } from "./logger.js";
import { lastGoodOf, readConfigFile } from "./tls-files.js";

/** Who a creds file names: its user's public key and name, and when its JWT was issued and expires (never: undefined). */
export interface NatsCredsUser {
  publicKey: string;
  name: string;
  issuedAt?: Date;
  expiresAt?: Date;
}

/** A block between marker lines (-----BEGIN NATS USER JWT----- … ------END NATS USER JWT------), as nats.js reads them. */
const BLOCK = /-{3,}[^\n]*-{3,}\r?\n\s*(\S+)\s*\r?\n\s*-{3,}[^\n]*-{3,}/g;

interface UserClaims {
  sub?: unknown;
  name?: unknown;
  iat?: unknown;
  exp?: unknown;
  nats?: { type?: unknown };
}

function claimsOf(jwt: string): UserClaims | undefined {
  const parts = jwt.split(".");
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    return typeof claims === "object" && claims !== null ? (claims as UserClaims) : undefined;
  } catch {
    return undefined;
  }
}

/** The user a creds file's text names, checked: a user JWT, not expired at `now`, with the seed of that user. */
export function checkNatsCreds(path: string, text: string, now = Date.now()): NatsCredsUser {
  const user = inspectNatsCreds(path, text);
  if (user.expiresAt && user.expiresAt.getTime() <= now) {
    throw new Error(`NATS_CREDS_FILE: ${path}: its JWT expired at ${user.expiresAt.toISOString()}`);
  }
  return user;
}

/** The claims of a creds file's JWT (its first block), unchecked; undefined without one (credential-expiry.ts). */
export function credsJwtClaims(text: string): { iat?: unknown; exp?: unknown } | undefined {
  const jwt = [...text.matchAll(BLOCK)][0]?.[1];
  return jwt ? claimsOf(jwt) : undefined;
}

/** The user a creds file's text names: a user JWT with the seed of that user, expired or not. */
function inspectNatsCreds(path: string, text: string): NatsCredsUser {
  const where = `NATS_CREDS_FILE: ${path}`;
  const [jwt, seed] = [...text.matchAll(BLOCK)].map((match) => match[1]);
  if (!jwt || !seed) throw new Error(`${where} holds no user JWT and seed (the blocks nsc generate creds writes)`);
  const claims = claimsOf(jwt);
  if (!claims) throw new Error(`${where}: its first block is not a JWT`);
  const type = claims.nats?.type;
  if (type !== "user") throw new Error(`${where}: its JWT is not a user's but ${JSON.stringify(type ?? "untyped")}`);
  let seedOwner: string;
  try {
    seedOwner = nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey();
  } catch {
    throw new Error(`${where}: its second block is not an NKEY seed`);
  }
  if (seedOwner !== claims.sub) {
    throw new Error(
      `${where}: its seed is not the JWT's user's (${String(claims.sub)}), so the server would refuse it`,
    );
  }
  const dateOf = (seconds: unknown) => (typeof seconds === "number" ? new Date(seconds * 1000) : undefined);
  const issuedAt = dateOf(claims.iat);
  const expiresAt = dateOf(claims.exp);
  return {
    publicKey: seedOwner,
    name: typeof claims.name === "string" ? claims.name : "",
    ...(issuedAt ? { issuedAt } : {}),
    ...(expiresAt ? { expiresAt } : {}),
  };
}

/** Left of a JWT's lifetime when it is warned about, unless renewed: a tenth of its lifetime, at least 5 minutes. */
export const RENEWAL_WARNING_MIN_MS = 5 * 60_000;

/** Whether `user`'s JWT is so close to its expiry at `now` that a renewal should have come: a tenth of its lifetime
 *  left, or RENEWAL_WARNING_MIN_MS if that is more. */
export function renewalOverdue(user: NatsCredsUser, now: number): boolean {
  if (!user.expiresAt) return false;
  const lifetimeMs = user.issuedAt ? user.expiresAt.getTime() - user.issuedAt.getTime() : 0;
  return user.expiresAt.getTime() - now <= Math.max(RENEWAL_WARNING_MIN_MS, lifetimeMs / 10);
}

/**
 * Looks at NATS_CREDS_FILE every `everyMs` and warns while its JWT is close to its expiry (renewalOverdue), or says
 * it has expired: whoever renews the file has stopped, and after the expiry the server closes the connection and
 * refuses the next one. A log to alert on before that outage, not after. Returns the function that stops it.
 */
export function watchNatsCredsExpiry(path: string, log: Logger, everyMs = 60_000, now = Date.now): () => void {
  const look = () => {
    let user: NatsCredsUser;
    try {
      user = inspectNatsCreds(path, readFileSync(path, "utf8"));
    } catch {
      return; // unreadable or being rewritten: natsCredsSource warns when it matters, at a connection
    }
    if (!user.expiresAt || !renewalOverdue(user, now())) return;
    const remainingS = Math.round((user.expiresAt.getTime() - now()) / 1000);
    const context = { natsUser: user.name, expiresAt: user.expiresAt.toISOString(), remainingS };
    if (remainingS <= 0) log.error(context, "the NATS credentials in NATS_CREDS_FILE have expired: renew the file");
    else log.warn(context, "the NATS credentials in NATS_CREDS_FILE expire soon and have not been renewed");
  };
  look();
  const timer = setInterval(look, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** Reads NATS_CREDS_FILE now and checks it (checkNatsCreds), so that a wrong file stops the start. */
export function readNatsCreds(path: string): NatsCredsUser {
  return checkNatsCreds(path, readConfigFile("NATS_CREDS_FILE", path));
}

/**
 * What nats.js's credsAuthenticator calls at each connection: the file as it is now, or, if it cannot be read or no
 * longer checks out (being rewritten, a JWT already expired), the last good content, with a warning (lastGoodOf; the
 * server decides: an expired JWT is refused and the client tries again). A renewal is logged.
 */
export function natsCredsSource(path: string, log: Logger): () => Uint8Array {
  let lastUser: NatsCredsUser | undefined;
  const current = lastGoodOf(
    () => {
      const text = readFileSync(path, "utf8");
      const user = checkNatsCreds(path, text);
      if (
        lastUser &&
        (user.publicKey !== lastUser.publicKey || user.expiresAt?.getTime() !== lastUser.expiresAt?.getTime())
      ) {
        log.info(
          { natsUser: user.name, expiresAt: user.expiresAt?.toISOString() },
          "NATS credentials renewed: NATS_CREDS_FILE changed",
        );
      }
      lastUser = user;
      return text;
    },
    log,
    "NATS_CREDS_FILE cannot be used as it is now: connecting with the credentials read before",
  );
  return () => new TextEncoder().encode(current());
}
