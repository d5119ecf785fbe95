// Host name validation: the gate every name passes before it reaches a path,
// a storage key or an ACME order.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidHostnameError, isValidHostname, matchesPattern, normalizeHostname } from '../../src/hostname.js';

function rejects(input: unknown, reason: RegExp, opts?: { allowWildcard?: boolean }): void {
  assert.throws(() => normalizeHostname(input, opts), (err: unknown) => {
    assert.ok(err instanceof InvalidHostnameError, `expected InvalidHostnameError, got ${String(err)}`);
    assert.equal(err.code, 'INVALID_HOSTNAME');
    assert.match(err.message, reason);
    return true;
  });
  if (!opts?.allowWildcard) assert.equal(isValidHostname(input), false);
}

/** A name of exactly `length` characters made of 63-character labels. */
function nameOfLength(length: number): string {
  const labels: string[] = [];
  let left = length;
  while (left > 0) {
    const size = Math.min(63, left);
    // a label must not be followed by a lone dot: keep room for ".x" at the end
    const take = left - size === 1 ? size - 2 : size;
    labels.push('a'.repeat(take));
    left -= take + 1;
  }
  const name = labels.join('.');
  assert.equal(name.length, length);
  return name;
}

describe('normalizeHostname accepts and canonicalizes', () => {
  test('case-folds', () => {
    assert.equal(normalizeHostname('WWW.Example.COM'), 'www.example.com');
  });

  test('drops one trailing dot', () => {
    assert.equal(normalizeHostname('example.com.'), 'example.com');
  });

  test('accepts A-label IDNs', () => {
    assert.equal(normalizeHostname('xn--bcher-kva.example'), 'xn--bcher-kva.example');
    assert.equal(normalizeHostname('XN--BCHER-KVA.Example'), 'xn--bcher-kva.example');
  });

  test('accepts hyphens and digits inside labels', () => {
    assert.equal(normalizeHostname('a-b.1x.example.com'), 'a-b.1x.example.com');
    assert.equal(normalizeHostname('123.example.com'), '123.example.com');
  });

  test('accepts a 63-character label', () => {
    const name = `${'a'.repeat(63)}.example.com`;
    assert.equal(normalizeHostname(name), name);
  });

  test('accepts 253 characters, and 253 plus a trailing dot', () => {
    const name = nameOfLength(253);
    assert.equal(normalizeHostname(name), name);
    assert.equal(normalizeHostname(`${name}.`), name);
  });

  test('isValidHostname agrees', () => {
    assert.equal(isValidHostname('Example.com'), true);
    assert.equal(isValidHostname('exa mple.com'), false);
  });
});

describe('normalizeHostname rejects', () => {
  test('raw unicode (IDNs must be A-labels)', () => {
    rejects('bücher.example', /non-ASCII.*xn--/);
    rejects('例え.jp', /non-ASCII/);
    // a fullwidth dot would otherwise be a second spelling of a dot
    rejects('example\uff0ecom', /non-ASCII/);
  });

  test('".." and empty labels', () => {
    rejects('..', /empty label/);
    rejects('a..example.com', /empty label/);
    rejects('.example.com', /empty label/);
    rejects('example.com..', /empty label/);
    rejects('../etc', /empty label|not a DNS label/);
  });

  test('path separators', () => {
    rejects('a/b.example.com', /not a DNS label/);
    rejects('example.com/', /not a DNS label/);
    rejects('a\\b.example.com', /not a DNS label/);
    rejects('a/../../b.example.com', /empty label|not a DNS label/);
  });

  test('empty input and non-strings', () => {
    rejects('', /empty/);
    rejects(undefined, /not a string/);
    rejects(42, /not a string/);
    rejects({ toString: () => 'example.com' }, /not a string/);
  });

  test('a 64-character label', () => {
    rejects(`${'a'.repeat(64)}.example.com`, /label longer than 63/);
  });

  test('names of 254 characters or more', () => {
    rejects(nameOfLength(254), /longer than 253/);
    rejects(`${nameOfLength(254)}.`, /longer than 253/);
    const huge = `${'a.'.repeat(5000)}com`;
    rejects(huge, /longer than 253/);
    // the error message does not echo a huge input back in full
    assert.throws(() => normalizeHostname(huge), (err: Error) => err.message.length < 200);
  });

  test('numbers that are neither a host name nor an IP address as acmed writes one (ip-address.test.ts has the addresses)', () => {
    rejects('10.0.0.1.', /neither a host name|IPv4/);
    rejects('a.b.1', /neither a host name/);
    rejects('[2001:db8::1]', /without brackets/);
    rejects('2001:db8::1.example', /not a DNS label/);
  });

  test('leading or trailing hyphen in a label', () => {
    rejects('-a.example.com', /not a DNS label/);
    rejects('a-.example.com', /not a DNS label/);
    rejects('a.-example.com', /not a DNS label/);
    rejects('a.example-.com', /not a DNS label/);
  });

  test('NUL, control characters and whitespace', () => {
    rejects('example.com\0', /control/);
    rejects('exa\0mple.com', /control/);
    rejects('a\x01.example.com', /control/);
    rejects('a\x7f.example.com', /control/);
    rejects('example.com\n', /control/);
    rejects('example.com\r\nX-Injected: 1', /control/);
    rejects(' example.com', /control/);
    rejects('exa mple.com', /control/);
    rejects('a\tb.example.com', /control/);
  });

  test('other punctuation', () => {
    for (const name of ['a_b.example.com', 'a:80.example.com', 'a@b.example.com', 'a%2e.example.com', 'a?.example.com']) {
      rejects(name, /not a DNS label/);
    }
  });

  test('single-label names', () => {
    rejects('localhost', /two labels/);
    rejects('com.', /two labels/);
  });
});

describe('wildcards', () => {
  test('"*." is refused unless allowed', () => {
    rejects('*.example.com', /not a DNS label/);
  });

  test('"*." as the first label is accepted when allowed, and normalized', () => {
    assert.equal(normalizeHostname('*.Example.COM.', { allowWildcard: true }), '*.example.com');
  });

  test('"*" anywhere else, or as part of a label, is refused even when allowed', () => {
    const allow = { allowWildcard: true };
    rejects('a.*.example.com', /not a DNS label/, allow);
    rejects('*.*.example.com', /not a DNS label/, allow);
    rejects('**.example.com', /not a DNS label/, allow);
    rejects('x*.example.com', /not a DNS label/, allow);
    rejects('*x.example.com', /not a DNS label/, allow);
    rejects('example.*', /not a DNS label/, allow);
    rejects('*', /two labels/, allow);
  });
});

describe('matchesPattern', () => {
  test('an exact pattern matches only itself', () => {
    assert.equal(matchesPattern('example.com', 'example.com'), true);
    assert.equal(matchesPattern('www.example.com', 'example.com'), false);
    assert.equal(matchesPattern('example.org', 'example.com'), false);
    assert.equal(matchesPattern('notexample.com', 'example.com'), false);
  });

  test('a wildcard matches exactly one more label', () => {
    assert.equal(matchesPattern('a.example.com', '*.example.com'), true);
    assert.equal(matchesPattern('www-2.example.com', '*.example.com'), true);
  });

  test('a wildcard does not match two labels deep', () => {
    assert.equal(matchesPattern('a.b.example.com', '*.example.com'), false);
  });

  test('a wildcard does not match the bare domain', () => {
    assert.equal(matchesPattern('example.com', '*.example.com'), false);
  });

  test('a wildcard does not match a name that only ends with the same text', () => {
    assert.equal(matchesPattern('aexample.com', '*.example.com'), false);
    assert.equal(matchesPattern('a.badexample.com', '*.example.com'), false);
    assert.equal(matchesPattern('.example.com', '*.example.com'), false);
  });
});
