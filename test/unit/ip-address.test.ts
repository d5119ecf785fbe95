// IP address names (RFC 8738): one canonical spelling, refusals with a
// reason, exact-only allowlisting, Host headers, ACME identifiers and the
// storage segment an IPv6 address is kept under.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidHostnameError, normalizeHostname } from '../../src/hostname.js';
import { isIpAddress } from '../../src/ip-address.js';
import { nameOfHostHeader, urlHostOf } from '../../src/challenge/host-header.js';
import { identifierOf, nameOfIdentifier } from '../../src/acme/identifiers.js';
import { nameOfSegment, nameSegment, namesOfSegments } from '../../src/storage/name-segment.js';
import { assertValidKey, keys } from '../../src/storage/keys.js';
import { parseConfig } from '../../src/config/load.js';
import { certificateForHost, HostNotAllowedError, isManagedName } from '../../src/config/managed.js';

function refusal(input: string): string {
  try {
    normalizeHostname(input, { allowWildcard: true });
  } catch (err) {
    assert.ok(err instanceof InvalidHostnameError, `${input}: ${String(err)}`);
    return err.message;
  }
  assert.fail(`${JSON.stringify(input)} was accepted`);
}

describe('canonical form', () => {
  test('IPv4 in four decimal parts is kept as written', () => {
    for (const address of ['127.0.0.1', '192.0.2.10', '0.0.0.0', '255.255.255.255', '10.0.0.1']) {
      assert.equal(normalizeHostname(address), address);
      assert.ok(isIpAddress(address));
    }
  });

  test('IPv6 becomes RFC 5952 text: lower case, leading zeros dropped, the longest zero run compressed', () => {
    const table: [string, string][] = [
      ['::1', '::1'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['2001:DB8::1', '2001:db8::1'],
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      // two zero runs: the longer one is compressed
      ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'],
      // equal runs: the first one
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      // a single zero group is not compressed
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['FD00::2', 'fd00::2'],
      ['fe80:0::fc:ff:fe00:1', 'fe80::fc:ff:fe00:1'],
      // dotted input is written in hex groups; so is a zero group at the end
      ['::192.0.2.1', '::c000:201'],
      ['::1:0', '::1:0'],
      ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
    ];
    for (const [input, canonical] of table) {
      assert.equal(normalizeHostname(input), canonical, input);
      assert.ok(isIpAddress(canonical));
    }
  });

  test('host names are not IP addresses', () => {
    for (const name of ['example.com', 'a1.example.com', 'cafe.example', 'dead.beef.example']) {
      assert.equal(isIpAddress(normalizeHostname(name)), false, name);
    }
  });
});

describe('refused with a reason', () => {
  const table: [string, RegExp][] = [
    ['010.1.1.1', /leading zeros/],
    ['1.2.3.04', /leading zeros/],
    ['1.2.3', /four/],
    ['1.2.3.4.5', /four/],
    ['127.1', /four/],
    ['2130706433', /four|two labels/],
    ['256.0.0.1', /0\.\.255/],
    ['1.2.3.4.', /neither a host name|four/],
    ['0x7f.0.0.1', /neither a host name/],
    ['1.2.3.0x4', /neither a host name/],
    ['fe80::1%eth0', /zone/],
    ['fe80::1%25eth0', /zone/],
    ['[::1]', /brackets/],
    ['::ffff:192.0.2.1', /IPv4-mapped.*192\.0\.2\.1/],
    ['0:0:0:0:0:ffff:7f00:1', /IPv4-mapped.*127\.0\.0\.1/],
    ['::ffff:c000:201', /IPv4-mapped.*192\.0\.2\.1/],
    ['1::2::3', /not an IPv6/],
    ['1:2:3:4:5:6:7:8:9', /not an IPv6/],
    ['12345::1', /not an IPv6/],
    [':::1', /not an IPv6/],
    ['*.192.0.2.1', /cannot be a wildcard/],
    ['*.::1', /cannot be a wildcard/],
  ];
  for (const [input, reason] of table) {
    test(JSON.stringify(input), () => assert.match(refusal(input), reason));
  }

  test('hostile input near an address is refused before it can reach a path or a key', () => {
    for (const input of ['127.0.0.1/../x', '../127.0.0.1', '127.0.0.1\n', '::1\r\nX: y', '::1/..', '::1 ', '\u0661.2.3.4', '1.2.3.4:80', '::1#', `${'1:'.repeat(200)}1`]) {
      const message = refusal(input);
      assert.ok(message.length < 200, message);
    }
  });
});

describe('allowlist (domains)', () => {
  const BASE = 'account_email: ops@example.com\ntos_accepted: true\n';
  const config = parseConfig(`${BASE}domains: ["*.example.com", "192.0.2.10", "2001:DB8::10"]\nchallenge: {type: http-01}\n`);

  test('an address is allowed only when listed exactly, in any spelling of it', () => {
    assert.deepEqual(certificateForHost(config, '192.0.2.10'), { name: '192.0.2.10', names: ['192.0.2.10'], challenge: 'http-01' });
    assert.deepEqual(certificateForHost(config, '2001:db8:0::10'), { name: '2001:db8::10', names: ['2001:db8::10'], challenge: 'http-01' });
    assert.ok(isManagedName(config, '2001:db8::10'));
    assert.ok(isManagedName(config, '192.0.2.10'));
    for (const other of ['192.0.2.11', '2001:db8::11', '10.192.0.2', '127.0.0.1']) {
      assert.throws(() => certificateForHost(config, other), HostNotAllowedError, other);
      assert.equal(isManagedName(config, other), false, other);
    }
  });

  test('no pattern reaches an address: "*.0.2.10" is no pattern at all', () => {
    assert.throws(() => parseConfig(`${BASE}domains: ["*.0.2.10"]\n`), /neither a host name|cannot be a wildcard/);
    assert.throws(() => parseConfig(`${BASE}domains: ["*.192.0.2.10"]\n`), /cannot be a wildcard/);
  });

  test('an allowed address is validated by http-01 even when challenge.type is dns-01', () => {
    const dns = parseConfig(`${BASE}domains: ["192.0.2.10", "a.example.com"]\nchallenge: {type: dns-01}\ndns: {provider: exec, exec: {command: /bin/true}}\n`);
    assert.equal(certificateForHost(dns, '192.0.2.10').challenge, 'http-01');
    assert.equal(certificateForHost(dns, 'a.example.com').challenge, undefined);
  });
});

describe('Host headers', () => {
  const table: [string | undefined, string | undefined][] = [
    ['127.0.0.1', '127.0.0.1'],
    ['127.0.0.1:5002', '127.0.0.1'],
    ['[::1]', '::1'],
    ['[::1]:80', '::1'],
    ['[2001:DB8:0::1]:8080', '2001:db8::1'],
    ['Example.COM:80', 'example.com'],
    ['example.com.', 'example.com'],
    // a bare IPv6 address is no valid Host: its last group would read as a port
    ['::1', undefined],
    ['2001:db8::1', undefined],
    ['[fe80::1%25eth0]:80', undefined],
    ['[::1', undefined],
    ['[::1]x', undefined],
    ['[::1]:99999999', undefined],
    ['[]', undefined],
    ['010.0.0.1', undefined],
    ['', undefined],
    [undefined, undefined],
  ];
  for (const [header, name] of table) {
    test(`${JSON.stringify(header)} → ${JSON.stringify(name)}`, () => assert.equal(nameOfHostHeader(header), name));
  }

  test('an IPv6 address goes in brackets in a URL', () => {
    assert.equal(urlHostOf('::1'), '[::1]');
    assert.equal(urlHostOf('127.0.0.1'), '127.0.0.1');
    assert.equal(urlHostOf('example.com'), 'example.com');
  });
});

describe('ACME identifiers', () => {
  test('an address is an "ip" identifier, a host name a "dns" one', () => {
    assert.deepEqual(identifierOf('127.0.0.1'), { type: 'ip', value: '127.0.0.1' });
    assert.deepEqual(identifierOf('2001:db8::1'), { type: 'ip', value: '2001:db8::1' });
    assert.deepEqual(identifierOf('example.com'), { type: 'dns', value: 'example.com' });
  });

  test('what the CA sends back is read into the canonical spelling', () => {
    assert.equal(nameOfIdentifier({ type: 'ip', value: '2001:DB8:0:0:0:0:0:1' }), '2001:db8::1');
    assert.equal(nameOfIdentifier({ type: 'ip', value: '127.0.0.1' }), '127.0.0.1');
    assert.equal(nameOfIdentifier({ type: 'dns', value: 'Example.com' }), 'example.com');
  });
});

describe('storage segment', () => {
  test('IPv4 and host names are kept as written; each ":" of IPv6 becomes "_"', () => {
    const table: [string, string][] = [
      ['127.0.0.1', '127.0.0.1'],
      ['example.com', 'example.com'],
      ['::1', '__1'],
      ['2001:db8::1', '2001_db8__1'],
      ['2001:DB8:0:0:0:0:0:1', '2001_db8__1'],
      ['fe80::fc:ff:fe00:1', 'fe80__fc_ff_fe00_1'],
      ['2001:db8:0:0:1::', '2001_db8_0_0_1__'],
    ];
    for (const [name, segment] of table) {
      assert.equal(nameSegment(name), segment, name);
      assert.equal(nameOfSegment(segment), normalizeHostname(name), segment);
      assertValidKey(keys.index(name));
      assertValidKey(keys.lock(name));
      assertValidKey(keys.order(name));
    }
    assert.equal(keys.index('::1'), 'index/__1');
  });

  test('only canonical segments map back; a listing passes over segments that are no name', () => {
    for (const segment of ['0_0_0_0_0_0_0_1', '2001_DB8__1', 'a_b.example.com', '_', '___', '..', '1_2_3', '__ffff_7f00_1']) {
      assert.throws(() => nameOfSegment(segment), segment);
    }
    assert.deepEqual(namesOfSegments(['__1', 'example.com', 'lost+found', '127.0.0.1', '0_0__1']), ['::1', 'example.com', '127.0.0.1']);
  });

  test('segments never clash: distinct names give distinct segments', () => {
    const names = ['::1', '::1:0', '1::', '1::1', '10::1', '1:0::1', 'a::1', 'a.example.com', '127.0.0.1'].map((n) => normalizeHostname(n));
    const segments = new Set(names.map(nameSegment));
    assert.equal(segments.size, new Set(names).size);
  });
});
