/**
 * When the credentials a service connects with stop being valid, as metrics to alert on before the outage: a TLS
 * certificate or CA whose renewal failed, a NATS_CREDS_FILE whose short-lived JWT nobody renews. The services read
 * these files again at each connection (a renewal needs no restart), so nothing fails until the old one expires and
 * a reconnection is refused; these gauges show it coming (alert CredentialExpiringSoon).
 *
 * `tm_credential_not_after_timestamp_seconds{credential}` and `tm_credential_not_before_timestamp_seconds{credential}`
 * (the names of x509-certificate-exporter's and cert-manager's gauges), one series per file the service uses, read
 * again every minute: a renewed file shows its new dates within one. A PEM file with several certificates reports the
 * one that expires first (the first to break). A file that cannot be read or parsed reports nothing until it can (the
 * connection's own checks say what is wrong with it); a JWT without an expiry has no not-after series.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Meter, ObservableResult } from "@opentelemetry/api";
import type { BaseConfig } from "./config.js";
import { credsJwtClaims } from "./nats-creds.js";

export type CredentialKind = "nats_creds" | "nats_tls_ca" | "nats_tls_cert" | "redis_tls_ca" | "redis_tls_cert";

export interface CredentialFile {
  credential: CredentialKind;
  path: string;
}

/** When a credential starts and stops being valid (undefined: not said). */
export interface Validity {
  notBefore?: Date;
  notAfter?: Date;
}

/** The credential files a service's configuration names. */
export function credentialFilesOf(config: BaseConfig): CredentialFile[] {
  const files: Array<[CredentialKind, string | undefined]> = [
    ["nats_creds", config.NATS_CREDS_FILE],
    ["nats_tls_ca", config.NATS_TLS_CA_FILE],
    ["nats_tls_cert", config.NATS_TLS_CERT_FILE],
    ["redis_tls_ca", config.REDIS_TLS_CA_FILE],
    ["redis_tls_cert", config.REDIS_TLS_CERT_FILE],
  ];
  return files.flatMap(([credential, path]) => (path ? [{ credential, path }] : []));
}

const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** A file's validity: a .creds file's JWT (iat, exp), or a PEM file's earliest-expiring certificate. */
export function validityOf(credential: CredentialKind, text: string): Validity | undefined {
  if (credential === "nats_creds") {
    const claims = credsJwtClaims(text);
    if (!claims) return undefined;
    const at = (seconds: unknown) =>
      typeof seconds === "number" && seconds > 0 ? new Date(seconds * 1000) : undefined;
    return { notBefore: at(claims.iat), notAfter: at(claims.exp) };
  }
  let first: Validity | undefined;
  for (const [pem] of text.matchAll(CERTIFICATE)) {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(pem);
    } catch {
      continue;
    }
    const notAfter = new Date(certificate.validTo);
    if (!first?.notAfter || notAfter < first.notAfter) first = { notBefore: new Date(certificate.validFrom), notAfter };
  }
  return first;
}

/**
 * Exports the two gauges for `files`, reading them now and every `everyMs`. Returns the function that stops the
 * reading. Nothing is registered without files: a service without TLS or creds exports no such series.
 */
export function exportCredentialExpiry(meter: Meter, files: readonly CredentialFile[], everyMs = 60_000): () => void {
  if (files.length === 0) return () => undefined;
  const validity = new Map<CredentialKind, Validity>();
  const read = () => {
    for (const { credential, path } of files) {
      let found: Validity | undefined;
      try {
        found = validityOf(credential, readFileSync(path, "utf8"));
      } catch {
        found = undefined; // unreadable now (being rewritten, removed): the connection's checks name the problem
      }
      if (found) validity.set(credential, found);
      else validity.delete(credential);
    }
  };
  read();
  const observe = (field: keyof Validity) => (result: ObservableResult) => {
    for (const [credential, dates] of validity) {
      const date = dates[field];
      if (date) result.observe(date.getTime() / 1000, { credential });
    }
  };
  const notAfter = meter.createObservableGauge("tm_credential_not_after_timestamp_seconds", {
    description:
      "When a credential file this service uses stops being valid (a TLS certificate's or CA's notAfter, the earliest " +
      "in the file; a NATS_CREDS_FILE JWT's exp), Unix seconds, read again every minute",
  });
  const notBefore = meter.createObservableGauge("tm_credential_not_before_timestamp_seconds", {
    description:
      "When that credential became valid (notBefore; a JWT's iat), Unix seconds: with not-after, its lifetime",
  });
  const observations: Array<[typeof notAfter, (result: ObservableResult) => void]> = [
    [notAfter, observe("notAfter")],
    [notBefore, observe("notBefore")],
  ];
  for (const [gauge, callback] of observations) gauge.addCallback(callback);
  const timer = setInterval(read, everyMs);
  timer.unref();
  // Stopped, the service exports them no more (in-process tests share one meter provider between services).
  return () => {
    clearInterval(timer);
    for (const [gauge, callback] of observations) gauge.removeCallback(callback);
  };
}
