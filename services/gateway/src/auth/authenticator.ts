/**
 * Turns a call's `authorization: Bearer <credential>` into a caller identity, per GATEWAY_AUTH_MODE. Failures are
 * UNAUTHENTICATED with one of two messages only: which part of a credential was wrong is never said.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { ConfigError, type Logger, ReloadingFile } from "@tm/kit";
import type { CallContext } from "@tm/proto";
import { type ApiKeyEntry, findCaller, parseApiKeyFile, parseApiKeyList } from "./api-keys.js";
import type { AuthConfig } from "./config.js";
import { createJwtVerifier } from "./jwt.js";

export const MISSING_CREDENTIALS = "missing credentials: send authorization: Bearer <api key>";
export const INVALID_CREDENTIALS = "invalid credentials";

export type AuthFailureReason = "missing" | "malformed" | "invalid";

export class AuthFailure extends ConnectError {
  constructor(readonly reason: AuthFailureReason) {
    super(reason === "missing" ? MISSING_CREDENTIALS : INVALID_CREDENTIALS, Code.Unauthenticated);
  }
}

/** Who is calling: the api-key caller name or the JWT subject, and the token's scopes (none for an API key). */
export interface Identity {
  caller: string;
  scopes: readonly string[];
}

export interface Authenticator {
  mode: AuthConfig["GATEWAY_AUTH_MODE"];
  /** The caller's identity; throws AuthFailure. */
  authenticate(ctx: CallContext): Promise<Identity>;
}

export async function createAuthenticator(config: AuthConfig, log: Logger): Promise<Authenticator | undefined> {
  switch (config.GATEWAY_AUTH_MODE) {
    case "none":
      return undefined;
    case "api-key": {
      const keys = await apiKeySource(config, log);
      return {
        mode: "api-key",
        authenticate: async (ctx) => {
          const caller = findCaller(await keys(), bearerOf(ctx));
          if (caller === undefined) throw new AuthFailure("invalid");
          return { caller, scopes: [] };
        },
      };
    }
    case "jwt": {
      const verify = await createJwtVerifier({
        secret: config.GATEWAY_JWT_SECRET,
        publicKeyPem: config.GATEWAY_JWT_PUBLIC_KEY,
        issuer: config.GATEWAY_JWT_ISSUER,
        audience: config.GATEWAY_JWT_AUDIENCE,
      }).catch((error: unknown) => {
        throw new ConfigError((error as Error).message);
      });
      return {
        mode: "jwt",
        authenticate: async (ctx) => {
          const token = bearerOf(ctx);
          try {
            const { subject, scopes } = await verify(token);
            return { caller: subject, scopes };
          } catch (error) {
            log.debug({ err: error }, "JWT rejected");
            throw new AuthFailure("invalid");
          }
        },
      };
    }
  }
}

async function apiKeySource(config: AuthConfig, log: Logger): Promise<() => Promise<readonly ApiKeyEntry[]>> {
  const list = config.GATEWAY_API_KEYS;
  const path = config.GATEWAY_API_KEYS_FILE;
  if (!list === !path) {
    throw new ConfigError("GATEWAY_AUTH_MODE=api-key needs exactly one of GATEWAY_API_KEYS or GATEWAY_API_KEYS_FILE");
  }
  try {
    if (path) {
      const file = await ReloadingFile.open(path, {
        name: "GATEWAY_API_KEYS_FILE",
        // An emptied file is refused too, at start or later: the previous keys stay rather than every caller locked out.
        parse: (text) => {
          const entries = parseApiKeyFile(text, path);
          if (entries.length === 0) throw new Error(`GATEWAY_API_KEYS_FILE ${path} holds no caller:key entries`);
          return entries;
        },
        log,
        onLoad: (entries) => log.info({ path, callers: entries.length }, "API keys loaded"),
      });
      return () => file.current();
    }
    const entries = parseApiKeyList(list as string);
    if (entries.length === 0) throw new Error("GATEWAY_API_KEYS holds no caller:key entries");
    return async () => entries;
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}

/** The credential of `authorization: Bearer <credential>` (scheme case-insensitive, as RFC 6750 allows). */
function bearerOf(ctx: CallContext): string {
  const header = ctx.header("authorization");
  if (header === undefined || header.trim() === "") throw new AuthFailure("missing");
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new AuthFailure("malformed");
  return match[1] as string;
}
