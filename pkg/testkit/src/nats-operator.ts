/**
 * NATS decentralised auth for tests (operator mode): an operator, its system account and an application account with
 * JetStream, whose users' credentials files (.creds, as `nsc generate creds` writes them) a test hands to a service.
 * The server reads the accounts from its configuration (resolver MEMORY), so no account server is needed.
 */
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from "@nats-io/jwt";
import { createAccount, createOperator, createUser, type KeyPair } from "@nats-io/nkeys";

export interface NatsOperator {
  /** Configuration text for startNats({ extraConfig }): the operator, the system account, the accounts. */
  serverConfig: string;
  /** A .creds file's content for a new user of the application account; `expiresInSeconds`: its JWT's expiry;
   *  `permissions`: the subjects it may publish and subscribe to (unset: any). */
  userCreds(name: string, options?: UserCredsOptions): Promise<Uint8Array>;
  /** A .creds file's content for a user of an account another operator signed: the server does not know it. */
  strangerCreds(name: string): Promise<Uint8Array>;
  /** The application account's JWT: what a wrong creds file may hold where a user's JWT belongs. */
  accountJwt: string;
}

export interface UserCredsOptions {
  expiresInSeconds?: number;
  permissions?: { publish: string[]; subscribe: string[] };
}

/** An account's limits written out: a claim without them is read as 0 (no connections, no JetStream). */
const UNLIMITED_ACCOUNT = {
  limits: {
    subs: -1,
    conn: -1,
    leaf: -1,
    imports: -1,
    exports: -1,
    data: -1,
    payload: -1,
    wildcards: true,
    mem_storage: -1,
    disk_storage: -1,
    streams: -1,
    consumer: -1,
  },
};

export async function createNatsOperator(): Promise<NatsOperator> {
  const operator = createOperator();
  const system = createAccount();
  const app = createAccount();
  const operatorJwt = await encodeOperator("tm-test", operator, { system_account: system.getPublicKey() });
  const systemJwt = await encodeAccount("SYS", system, {}, { signer: operator });
  const appJwt = await encodeAccount("TM", app, UNLIMITED_ACCOUNT, { signer: operator });

  const credsOf = async (account: KeyPair, name: string, { expiresInSeconds, permissions }: UserCredsOptions = {}) => {
    const user = createUser();
    const exp = expiresInSeconds === undefined ? undefined : Math.floor(Date.now() / 1000) + expiresInSeconds;
    const allowed = permissions ? { pub: { allow: permissions.publish }, sub: { allow: permissions.subscribe } } : {};
    const jwt = await encodeUser(name, user, account, allowed, exp === undefined ? {} : { exp });
    return fmtCreds(jwt, user);
  };
  // Signed by an operator of its own: the server has neither that operator nor the account.
  const stranger = createAccount();
  return {
    serverConfig: [
      `operator: "${operatorJwt}"`,
      `system_account: "${system.getPublicKey()}"`,
      "resolver: MEMORY",
      "resolver_preload: {",
      `  "${system.getPublicKey()}": "${systemJwt}"`,
      `  "${app.getPublicKey()}": "${appJwt}"`,
      "}",
    ].join("\n"),
    userCreds: (name, options = {}) => credsOf(app, name, options),
    strangerCreds: (name) => credsOf(stranger, name),
    accountJwt: appJwt,
  };
}
