import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InstallerError } from '../errors.js';
import { execa } from '../host/exec.js';

/*
 * The webserver's certificate when the operator brings none: a self-signed
 * pair made once with openssl (as omnibus-gitlab does on first install),
 * for the host's name, localhost and the loopback addresses, then kept like
 * the other generated secrets. Our own clients pin it; browsers are told to
 * replace it (docs/installer.md).
 */

export interface CertificatePair {
  cert: string;
  key: string;
}

/** The pair on disk when both halves are there, else undefined (a lone half is regenerated with its mate). */
export async function readPair(certFile: string, keyFile: string): Promise<CertificatePair | undefined> {
  const [cert, key] = await Promise.all([
    readFile(certFile, 'utf8').catch(() => undefined),
    readFile(keyFile, 'utf8').catch(() => undefined),
  ]);
  return cert && key ? { cert, key } : undefined;
}

export async function generatePair(openssl: string, host = os.hostname()): Promise<CertificatePair> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canopsis-cert-'));
  try {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    const names = [...new Set([host, 'localhost'])].map((n) => `DNS:${n}`).concat('IP:127.0.0.1', 'IP:::1');
    const r = await execa(
      openssl,
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '3650',
        '-subj',
        `/CN=${host}/O=Canopsis appliance (self-signed)`,
        '-addext',
        `subjectAltName=${names.join(',')}`,
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { reject: false, all: true },
    );
    if (r.exitCode !== 0)
      throw new InstallerError(
        `openssl could not make the webserver's self-signed certificate: ${r.all?.trim().split('\n').slice(-2).join(' | ')}`,
      );
    return { cert: await readFile(cert, 'utf8'), key: await readFile(key, 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
