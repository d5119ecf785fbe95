/** Facts read off a PEM certificate with node's own X.509 parser. */
import { X509Certificate } from 'node:crypto';

export interface CertificateInfo {
  names: string[];
  notBefore: Date;
  notAfter: Date;
  serialHex: string;
  issuer: string;
}

export function readCertificateInfo(pem: string): CertificateInfo {
  const cert = new X509Certificate(pem);
  const names = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4));
  return {
    names,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    serialHex: cert.serialNumber.toLowerCase(),
    issuer: cert.issuer,
  };
}

/** Splits a PEM chain into its certificates, in order. */
export function splitPemChain(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((c) => `${c}\n`) ?? [];
}
