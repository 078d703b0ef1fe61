/**
 * TLS to the gateway for the child tasks handlers submit: WORKER_GATEWAY_TLS_CA_FILE (a private CA to trust),
 * WORKER_GATEWAY_TLS_CERT_FILE and WORKER_GATEWAY_TLS_KEY_FILE (a client certificate to present), for a
 * WORKER_GATEWAY_URL behind a proxy that terminates TLS, as NATS_TLS_* and REDIS_TLS_* are for those servers. Read
 * and checked at start, each file named when it cannot be used; a renewed certificate is read at the next start.
 */
import { ConfigError, readTlsFiles, type TlsMaterial } from "@tm/kit";

export interface GatewayTlsConfig {
  WORKER_GATEWAY_URL?: string | undefined;
  WORKER_GATEWAY_TLS_CA_FILE?: string | undefined;
  WORKER_GATEWAY_TLS_CERT_FILE?: string | undefined;
  WORKER_GATEWAY_TLS_KEY_FILE?: string | undefined;
}

/** The PEM texts, or undefined without any of the files; a ConfigError naming what is wrong. */
export function gatewayTls(config: GatewayTlsConfig): TlsMaterial | undefined {
  let tls: TlsMaterial | undefined;
  try {
    tls = readTlsFiles("WORKER_GATEWAY", {
      ca: config.WORKER_GATEWAY_TLS_CA_FILE,
      cert: config.WORKER_GATEWAY_TLS_CERT_FILE,
      key: config.WORKER_GATEWAY_TLS_KEY_FILE,
    });
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  if (tls && !config.WORKER_GATEWAY_URL?.startsWith("https://")) {
    throw new ConfigError(
      `WORKER_GATEWAY_TLS_*_FILE need an https:// WORKER_GATEWAY_URL (got ${config.WORKER_GATEWAY_URL ?? "none"})`,
    );
  }
  return tls;
}
