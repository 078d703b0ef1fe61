import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { describe, expect, test } from "vitest";
import { digestOf, findCaller, parseApiKeyFile, parseApiKeyList } from "../src/auth/api-keys.js";
import { createJwtVerifier } from "../src/auth/jwt.js";

const ALICE_KEY = "alice-key-0123456789abcdef";
const BOB_KEY = "bob-key-0123456789abcdef";

describe("API keys", () => {
  test("parses comma-separated caller:key pairs, keeping only digests", () => {
    const entries = parseApiKeyList(` alice:${ALICE_KEY} , bob:${BOB_KEY},`);
    expect(entries.map((entry) => entry.caller)).toEqual(["alice", "bob"]);
    expect(entries[0]?.digest.equals(digestOf(ALICE_KEY))).toBe(true);
    expect(JSON.stringify(entries)).not.toContain(ALICE_KEY);
  });

  test("parses a key file: one pair per line, blank lines and # comments skipped, a colon allowed in the key", () => {
    const entries = parseApiKeyFile(`# rotated 2026-11-01\nalice:${ALICE_KEY}\n\r\nbob:${BOB_KEY}:v2\n`, "/keys");
    expect(entries.map((entry) => entry.caller)).toEqual(["alice", "bob"]);
    expect(findCaller(entries, `${BOB_KEY}:v2`)).toBe("bob");
  });

  test.each([
    ["no colon", "alice", "GATEWAY_API_KEYS entry 1: expected caller:key"],
    ["empty caller", `:${ALICE_KEY}`, "caller must be 1-64 characters"],
    ["caller with a space", `al ice:${ALICE_KEY}`, "caller must be 1-64 characters"],
    ["short key", "alice:short", "key must be at least 16 characters"],
    ["key twice", `alice:${ALICE_KEY},bob:${ALICE_KEY}`, "entry 2 (caller bob): the same key is configured twice"],
  ])("rejects %s with a message naming the entry but not the key", (_name, value, message) => {
    let thrown: Error | undefined;
    try {
      parseApiKeyList(value);
    } catch (error) {
      thrown = error as Error;
    }
    expect(thrown?.message).toContain(message);
    expect(thrown?.message).not.toContain(ALICE_KEY);
  });

  test("finds the caller of a right key and nobody for a wrong, truncated or extended one", () => {
    const entries = parseApiKeyList(`alice:${ALICE_KEY},bob:${BOB_KEY}`);
    expect(findCaller(entries, ALICE_KEY)).toBe("alice");
    expect(findCaller(entries, BOB_KEY)).toBe("bob");
    expect(findCaller(entries, ALICE_KEY.slice(0, -1))).toBeUndefined();
    expect(findCaller(entries, `${ALICE_KEY}x`)).toBeUndefined();
    expect(findCaller(entries, "")).toBeUndefined();
  });
});

describe("JWT", () => {
  const secret = "a-test-secret-that-is-long-enough-32";
  const hs256 = (claims: { sub?: string; iss?: string; aud?: string }) =>
    new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime("5m");

  test("HS256: a valid token gives its sub; iss and aud are checked when configured", async () => {
    const verify = await createJwtVerifier({ secret, issuer: "tm-auth", audience: "gateway" });
    const token = await hs256({ sub: "svc-reports", iss: "tm-auth", aud: "gateway" }).sign(
      new TextEncoder().encode(secret),
    );
    await expect(verify(token)).resolves.toEqual({ subject: "svc-reports", scopes: [] });
    const wrongIssuer = await hs256({ sub: "x", iss: "other", aud: "gateway" }).sign(new TextEncoder().encode(secret));
    await expect(verify(wrongIssuer)).rejects.toThrow(/iss/);
    const wrongAudience = await hs256({ sub: "x", iss: "tm-auth", aud: "other" }).sign(
      new TextEncoder().encode(secret),
    );
    await expect(verify(wrongAudience)).rejects.toThrow(/aud/);
  });

  test("the token's scopes: a space-separated scope claim, an scp list or string; both together", async () => {
    const verify = await createJwtVerifier({ secret });
    const key = new TextEncoder().encode(secret);
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT({ sub: "ops", ...claims }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m").sign(key);
    expect((await verify(await sign({ scope: "tasks.read  tasks.admin" }))).scopes).toEqual([
      "tasks.read",
      "tasks.admin",
    ]);
    expect((await verify(await sign({ scp: ["tasks.admin", 7] }))).scopes).toEqual(["tasks.admin"]);
    expect((await verify(await sign({ scp: "a b" }))).scopes).toEqual(["a", "b"]);
    expect((await verify(await sign({ scope: "a", scp: ["b"] }))).scopes).toEqual(["a", "b"]);
    expect((await verify(await sign({ scope: 42 }))).scopes).toEqual([]);
  });

  test("HS256: expired, not-yet-valid, wrongly signed, sub-less and alg=none tokens are refused", async () => {
    const verify = await createJwtVerifier({ secret });
    const key = new TextEncoder().encode(secret);
    const expired = await new SignJWT({ sub: "a" })
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime(Math.floor(Date.now() / 1000) - 120)
      .sign(key);
    await expect(verify(expired)).rejects.toThrow(/exp/);
    const notYet = await new SignJWT({ sub: "a" })
      .setProtectedHeader({ alg: "HS256" })
      .setNotBefore(Math.floor(Date.now() / 1000) + 600)
      .sign(key);
    await expect(verify(notYet)).rejects.toThrow(/nbf/);
    const otherSecret = await hs256({ sub: "a" }).sign(new TextEncoder().encode(`${secret}-other`));
    await expect(verify(otherSecret)).rejects.toThrow(/signature/);
    await expect(verify(await hs256({}).sign(key))).rejects.toThrow("token has no sub");
    const unsigned = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from('{"sub":"a"}').toString("base64url")}.`;
    await expect(verify(unsigned)).rejects.toThrow();
    await expect(verify("not a token")).rejects.toThrow();
  });

  test("RS256: verified with the public key; an HS256 token signed with that public key is refused", async () => {
    const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
    const pem = await exportSPKI(publicKey);
    const verify = await createJwtVerifier({ publicKeyPem: pem.replace(/\n/g, "\\n") });
    const token = await new SignJWT({ sub: "svc-billing" })
      .setProtectedHeader({ alg: "RS256" })
      .setExpirationTime("5m")
      .sign(privateKey);
    await expect(verify(token)).resolves.toEqual({ subject: "svc-billing", scopes: [] });
    const confused = await hs256({ sub: "attacker" }).sign(new TextEncoder().encode(pem));
    await expect(verify(confused)).rejects.toThrow();
  });

  test("configuration mistakes are named", async () => {
    await expect(createJwtVerifier({})).rejects.toThrow("exactly one of GATEWAY_JWT_SECRET");
    await expect(createJwtVerifier({ secret: "short" })).rejects.toThrow("at least 32 characters");
    await expect(createJwtVerifier({ publicKeyPem: "nope" })).rejects.toThrow("GATEWAY_JWT_PUBLIC_KEY is not a PEM");
  });
});
