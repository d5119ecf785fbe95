// ARI (RFC 9773): the certificate identifier must match what the CA computes
// byte for byte, or renewalInfo lookups 404 and we silently lose the CA's
// advice. Certificates come from openssl so the DER is not our own; openssl's
// own printout of the AKI and serial is the cross-check. The renewalInfo
// parser must refuse junk, and the retry/window helpers keep their bounds.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AriCertIdError,
  RenewalInfoError,
  ariCertId,
  clampRetryAfter,
  formatAriCertId,
  parseRenewalInfo,
  pickTimeInWindow,
} from '../../src/renewal/ari.js';

const RFC_KEY_ID = '69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4';
const RFC_CERT_ID = 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE';

let dir: string;
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const pem = (file: string) => readFileSync(join(dir, file), 'utf8');
const b64u = (colonHex: string) => Buffer.from(colonHex.replace(/:/g, ''), 'hex').toString('base64url');

/** The AKI keyIdentifier as openssl prints it ("AB:CD:…"). */
function opensslAki(file: string): string {
  const out = openssl('x509', '-in', file, '-noout', '-ext', 'authorityKeyIdentifier');
  const match = out.match(/([0-9A-F]{2}(?::[0-9A-F]{2})+)/);
  assert.ok(match, `openssl printed no AKI for ${file}: ${out}`);
  return match[1];
}

/** Issues a leaf for ca.pem with the given serial and extension lines. */
function leaf(file: string, serial: string, extensions: string[], key = 'ec'): void {
  const keyArgs = key === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  openssl('req', ...keyArgs, '-nodes', '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', '/CN=a.example.com');
  const args = ['x509', '-req', '-in', `${file}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial, '-days', '5', '-out', file];
  if (extensions.length) {
    writeFileSync(join(dir, `${file}.cnf`), `${extensions.join('\n')}\n`);
    args.push('-extfile', `${file}.cnf`);
  }
  openssl(...args);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'acmed-ari-'));
  // A CA whose Subject Key Identifier is the one in RFC 9773's example, so
  // leaves it signs carry that AKI.
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
    '-subj', '/CN=test ca', '-days', '10', '-addext', `subjectKeyIdentifier=${RFC_KEY_ID}`);
  leaf('rfc.pem', '0x87654321', ['authorityKeyIdentifier=keyid:always', 'subjectAltName=DNS:a.example.com']);
  leaf('small.pem', '0x01', ['authorityKeyIdentifier=keyid:always']);
  leaf('issuer.pem', '0x7F0102', ['authorityKeyIdentifier=keyid:always,issuer:always'], 'rsa');
  leaf('v1.pem', '0x1234', []);
  // Self-signed, high-bit serial: DER needs a leading 0x00 to keep it positive.
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'high.key', '-out', 'high.pem', '-subj', '/CN=high',
    '-days', '1', '-set_serial', '0x80ABCDEF0102030405');
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('ariCertId', () => {
  test('joins the raw parts as RFC 9773 example shows', () => {
    const keyId = Buffer.from(RFC_KEY_ID.replace(/:/g, ''), 'hex');
    assert.equal(formatAriCertId(keyId, Buffer.from('0087654321', 'hex')), RFC_CERT_ID);
  });

  test('reproduces RFC 9773 example from a real certificate (serial 0x87654321 keeps its 0x00)', () => {
    assert.equal(opensslAki('rfc.pem'), RFC_KEY_ID);
    assert.equal(ariCertId(pem('rfc.pem')), RFC_CERT_ID);
  });

  test('high-bit serial on a self-signed certificate', () => {
    const id = ariCertId(pem('high.pem'));
    assert.equal(id, `${b64u(opensslAki('high.pem'))}.${Buffer.from('0080ABCDEF0102030405', 'hex').toString('base64url')}`);
    assert.ok(id.endsWith('.AICrze8BAgMEBQ'));
  });

  test('a one-byte serial stays one byte', () => {
    assert.equal(ariCertId(pem('small.pem')), `${b64u(RFC_KEY_ID)}.AQ`);
  });

  test('picks keyIdentifier out of an AKI that also names issuer and serial (RSA leaf)', () => {
    const text = openssl('x509', '-in', 'issuer.pem', '-noout', '-ext', 'authorityKeyIdentifier');
    assert.match(text, /DirName|serial/i, 'fixture should carry issuer and serial in its AKI');
    assert.equal(ariCertId(pem('issuer.pem')), `${b64u(RFC_KEY_ID)}.fwEC`);
  });

  test('uses the first certificate of a chain', () => {
    assert.equal(ariCertId(pem('rfc.pem') + pem('ca.pem')), RFC_CERT_ID);
  });

  test('a certificate without AKI (v1, no extensions) is refused clearly', () => {
    assert.throws(() => ariCertId(pem('v1.pem')), (err: unknown) => err instanceof AriCertIdError && /Authority Key Identifier/.test(err.message));
  });

  test('junk is refused', () => {
    assert.throws(() => ariCertId('not a certificate'));
  });
});

describe('parseRenewalInfo', () => {
  test('reads the window and explanationURL', () => {
    const info = parseRenewalInfo({
      suggestedWindow: { start: '2025-01-02T04:00:00Z', end: '2025-01-03T04:00:00.5+01:00' },
      explanationURL: 'https://acme.example.com/docs/ari',
    });
    assert.equal(info.start.toISOString(), '2025-01-02T04:00:00.000Z');
    assert.equal(info.end.toISOString(), '2025-01-03T03:00:00.500Z');
    assert.equal(info.explanationURL, 'https://acme.example.com/docs/ari');
  });

  test('explanationURL is optional; a bad one is dropped, not fatal', () => {
    const window = { start: '2025-01-02T04:00:00Z', end: '2025-01-03T04:00:00Z' };
    assert.equal(parseRenewalInfo({ suggestedWindow: window }).explanationURL, undefined);
    assert.equal(parseRenewalInfo({ suggestedWindow: window, explanationURL: 'javascript:alert(1)' }).explanationURL, undefined);
    assert.equal(parseRenewalInfo({ suggestedWindow: window, explanationURL: 42 }).explanationURL, undefined);
  });

  test('an empty window (start == end) is accepted', () => {
    const info = parseRenewalInfo({ suggestedWindow: { start: '2025-01-02T04:00:00Z', end: '2025-01-02T04:00:00Z' } });
    assert.equal(info.start.getTime(), info.end.getTime());
  });

  const junk: [string, unknown, RegExp][] = [
    ['null', null, /not a JSON object/],
    ['array', [], /not a JSON object/],
    ['string', 'window', /not a JSON object/],
    ['no window', {}, /no suggestedWindow/],
    ['window not an object', { suggestedWindow: 'soon' }, /no suggestedWindow/],
    ['missing end', { suggestedWindow: { start: '2025-01-02T04:00:00Z' } }, /end is not an RFC 3339/],
    ['numeric start', { suggestedWindow: { start: 1735790400, end: '2025-01-02T04:00:00Z' } }, /start is not an RFC 3339/],
    ['loose date text', { suggestedWindow: { start: '1', end: '2025-01-02T04:00:00Z' } }, /start is not an RFC 3339/],
    ['no time zone', { suggestedWindow: { start: '2025-01-02T04:00:00', end: '2025-01-02T05:00:00Z' } }, /start is not an RFC 3339/],
    ['impossible date', { suggestedWindow: { start: '2025-13-45T04:00:00Z', end: '2025-01-02T05:00:00Z' } }, /start is not a valid date/],
    ['end before start', { suggestedWindow: { start: '2025-01-03T00:00:00Z', end: '2025-01-02T00:00:00Z' } }, /ends .* before it starts/],
  ];
  for (const [name, body, message] of junk) {
    test(`refuses ${name}`, () => {
      assert.throws(() => parseRenewalInfo(body), (err: unknown) => err instanceof RenewalInfoError && message.test(err.message));
    });
  }
});

describe('clampRetryAfter', () => {
  const HOUR = 3_600_000;
  const cases: [number | undefined, number][] = [
    [undefined, 6 * HOUR],
    [Number.NaN, 6 * HOUR],
    [0, 60_000],
    [-5, 60_000],
    [59_999, 60_000],
    [60_000, 60_000],
    [2 * HOUR, 2 * HOUR],
    [24 * HOUR, 24 * HOUR],
    [24 * HOUR + 1, 24 * HOUR],
    [Number.POSITIVE_INFINITY, 24 * HOUR],
  ];
  for (const [input, expected] of cases) {
    test(`${input} -> ${expected}`, () => assert.equal(clampRetryAfter(input), expected));
  }
});

describe('pickTimeInWindow', () => {
  const window = { start: new Date('2025-01-01T00:00:00Z'), end: new Date('2025-01-02T00:00:00Z') };
  const span = window.end.getTime() - window.start.getTime();

  test('maps random() linearly onto [start, end)', () => {
    assert.equal(pickTimeInWindow(window, () => 0).getTime(), window.start.getTime());
    assert.equal(pickTimeInWindow(window, () => 0.5).getTime(), window.start.getTime() + span / 2);
    assert.equal(pickTimeInWindow(window, () => 0.25).toISOString(), '2025-01-01T06:00:00.000Z');
  });

  test('never reaches end, even if random() misbehaves', () => {
    assert.ok(pickTimeInWindow(window, () => 0.9999999999).getTime() < window.end.getTime());
    assert.equal(pickTimeInWindow(window, () => 1).getTime(), window.end.getTime() - 1);
    assert.equal(pickTimeInWindow(window, () => 7).getTime(), window.end.getTime() - 1);
    assert.equal(pickTimeInWindow(window, () => -1).getTime(), window.start.getTime());
    assert.equal(pickTimeInWindow(window, () => Number.NaN).getTime(), window.start.getTime());
  });

  test('an empty window gives its start', () => {
    const at = new Date('2025-01-01T00:00:00Z');
    assert.equal(pickTimeInWindow({ start: at, end: at }, () => 0.7).getTime(), at.getTime());
  });
});
