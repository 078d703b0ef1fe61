/**
 * JWT verification with `jose`: HS256 with a shared secret or RS256 with a PEM public key (only that algorithm is
 * accepted, so an attacker cannot switch to "none" or to HS256 signed with the public key). exp and nbf are
 * checked (30 s clock tolerance), iss and aud when configured; the caller is the token's `sub`, and its scopes those
 * of the `scope` claim (a space-separated string, RFC 8693) or the `scp` claim (a list, or a string, as some
 * identity providers issue it).
 */
import { importSPKI, type JWTVerifyOptions, jwtVerify } from "jose";

export interface JwtSettings {
  secret?: string | undefined;
  publicKeyPem?: string | undefined;
  issuer?: string | undefined;
  audience?: string | undefined;
}

export interface JwtIdentity {
  subject: string;
  scopes: readonly string[];
}

export type JwtVerifier = (token: string) => Promise<JwtIdentity>;

export async function createJwtVerifier(settings: JwtSettings): Promise<JwtVerifier> {
  if (!settings.secret === !settings.publicKeyPem) {
    throw new Error(
      "GATEWAY_AUTH_MODE=jwt needs exactly one of GATEWAY_JWT_SECRET (HS256) or GATEWAY_JWT_PUBLIC_KEY (RS256)",
    );
  }
  const options: JWTVerifyOptions = { clockTolerance: 30 };
  if (settings.issuer) options.issuer = settings.issuer;
  if (settings.audience) options.audience = settings.audience;
  let key: Awaited<ReturnType<typeof importSPKI>> | Uint8Array;
  if (settings.secret) {
    if (settings.secret.length < 32) throw new Error("GATEWAY_JWT_SECRET must be at least 32 characters");
    key = new TextEncoder().encode(settings.secret);
    options.algorithms = ["HS256"];
  } else {
    const pem = (settings.publicKeyPem as string).replace(/\\n/g, "\n");
    try {
      key = await importSPKI(pem, "RS256");
    } catch (error) {
      throw new Error(`GATEWAY_JWT_PUBLIC_KEY is not a PEM (SPKI) RSA public key: ${(error as Error).message}`);
    }
    options.algorithms = ["RS256"];
  }
  return async (token) => {
    const { payload } = await jwtVerify(token, key, options);
    if (typeof payload.sub !== "string" || payload.sub === "") throw new Error("token has no sub");
    return { subject: payload.sub, scopes: [...scopesOf(payload.scope), ...scopesOf(payload.scp)] };
  };
}

function scopesOf(claim: unknown): string[] {
  if (typeof claim === "string") return claim.split(/\s+/).filter(Boolean);
  if (Array.isArray(claim)) return claim.filter((scope): scope is string => typeof scope === "string");
  return [];
}
