import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';

/** A certificate and its private key, both PEM. */
export interface PemPair {
  readonly cert: string;
  readonly key: string;
}

const SUBJECT = 'CN=pilot-registry';
const VALIDITY_YEARS = 10;
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** Names every registry certificate carries, plus the listen host when it is an IP literal. */
export function subjectAltNames(listenHost: string): { type: 'dns' | 'ip'; value: string }[] {
  const names: { type: 'dns' | 'ip'; value: string }[] = [
    { type: 'dns', value: 'localhost' },
    { type: 'ip', value: '127.0.0.1' },
    { type: 'ip', value: '::1' },
  ];
  const unspecified = listenHost === '0.0.0.0' || listenHost === '::';
  if (isIP(listenHost) !== 0 && !unspecified && !names.some((n) => n.value === listenHost))
    names.push({ type: 'ip', value: listenHost });
  return names;
}

/**
 * A self-signed ECDSA P-256 certificate for the registry. Clients pin its fingerprint instead of
 * validating it, so the subject only has to be recognisable. The X.509 library is loaded here, on
 * first use, so processes that never generate a certificate do not load it.
 */
export async function generateSelfSigned(listenHost: string, now: Date = new Date()): Promise<PemPair> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const notBefore = new Date(now.getTime() - 60_000);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALIDITY_YEARS);
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f; // a positive INTEGER
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: SUBJECT,
      notBefore,
      notAfter,
      signingAlgorithm: ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(subjectAltNames(listenHost)),
      ],
    },
    webcrypto,
  );
  const key = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }).toString();
  return { cert: cert.toString('pem'), key };
}
