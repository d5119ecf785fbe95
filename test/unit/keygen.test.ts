// RSA key generation must not block the event loop: a 4096-bit key takes
// long enough that a blocking implementation would starve every timer (and
// the http-01 server) while it runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { crypto as acmeCrypto } from 'acme-client';

test('an RSA 4096 key is generated while timers keep firing', async () => {
  let ticks = 0;
  const timer = setInterval(() => { ticks++; }, 5);
  const started = Date.now();
  const pem = await acmeCrypto.createPrivateRsaKey(4096);
  const took = Date.now() - started;
  clearInterval(timer);
  assert.equal(createPrivateKey(pem).asymmetricKeyDetails?.modulusLength, 4096);
  // A blocking generator lets the interval fire at most once; expect about one tick per 5 ms.
  assert.ok(ticks >= Math.min(3, Math.floor(took / 50)), `only ${ticks} ticks in ${took} ms`);
  assert.ok(ticks > 1, `only ${ticks} ticks in ${took} ms`);
});
