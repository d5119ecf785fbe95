// Storage health as one decorator: a store fault marks the store down once,
// one probe loop (1 s doubling to 30 s) brings it back up, probes report
// writability and free space. A manual clock drives the loop, so nothing here
// sleeps; the last tests run file storage on a real tmpfs that fills up and
// turns read-only.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/log.js';
import { withEncryption } from '../../src/storage/encrypted.js';
import { StorageError, StorageTimeoutError, isStoreFault } from '../../src/storage/errors.js';
import { createFileStorage } from '../../src/storage/file.js';
import { DEFAULT_MIN_FREE_BYTES, type StoreHealth, withHealth } from '../../src/storage/health.js';
import { Keyring } from '../../src/storage/keyring.js';
import { InvalidKeyError } from '../../src/storage/keys.js';
import { LockLostError } from '../../src/storage/lock.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/storage.js';
import { manualClock, settle } from '../harness/manual-clock.js';
import { mountTmpfs, type Tmpfs } from '../harness/tmpfs.js';



/** Log lines as parsed objects. */
function capturedLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('debug', { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { log, lines, messages: () => lines.map((l) => String(l.msg)) };
}

/** Memory storage that throws `fault` from every call while it is set, and counts probe writes. */
function faultyStorage(now: () => number) {
  const inner = createMemoryStorage({ now });
  const control = { fault: null as Error | null, writeFault: null as Error | null, probeWrites: 0, free: null as number | null, closed: 0 };
  const storage = { ...inner } as Storage;
  for (const name of ['get', 'set', 'add', 'delete', 'compareAndDelete', 'compareAndExtend', 'list',
    'putCertificate', 'getCertificate', 'deleteCertificate', 'listCertificates'] as const) {
    const method = inner[name] as (...args: unknown[]) => Promise<unknown>;
    (storage as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      if (name === 'set' && String(args[0]).startsWith('health/')) control.probeWrites++;
      if (control.fault) throw control.fault;
      if (control.writeFault && name === 'set') throw control.writeFault;
      return method(...args);
    };
  }
  storage.freeBytes = async () => {
    if (control.free === null) throw Object.assign(new Error('statfs: not supported'), { code: 'ENOSYS' });
    return control.free;
  };
  storage.close = async () => {
    control.closed++;
  };
  return { storage, inner, control };
}

function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated, write '/var/lib/acmed/state/x'`), { code });
}

function monitored(opts: { minFreeBytes?: number } = {}) {
  const clock = manualClock();
  const { storage: faulty, inner, control } = faultyStorage(clock.now);
  const { log, lines, messages } = capturedLog();
  const storage = withHealth(faulty, { log, now: clock.now, sleep: clock.sleep, ...opts });
  const events: Array<[string, StoreHealth]> = [];
  storage.on('down', (h) => events.push(['down', h]));
  storage.on('up', (h) => events.push(['up', h]));
  return { clock, storage, inner, control, events, lines, messages };
}

describe('isStoreFault', () => {
  test('remote store errors and disk errnos are store faults; anything else is not', () => {
    assert.ok(isStoreFault(new StorageError('redis down')));
    assert.ok(isStoreFault(new StorageTimeoutError('redis slow')));
    for (const code of ['ENOSPC', 'EROFS', 'EDQUOT', 'EIO', 'EMFILE', 'ENFILE', 'EACCES', 'EPERM']) {
      assert.ok(isStoreFault(errnoError(code)), code);
    }
    for (const err of [new Error('boom'), errnoError('ENOENT'), errnoError('EEXIST'), new InvalidKeyError('bad key'),
      new LockLostError('lost'), Object.assign(new Error('acme'), { code: 'ECONNREFUSED' }), null, undefined, 'ENOSPC', 42]) {
      assert.equal(isStoreFault(err), false, String((err as Error)?.message ?? err));
    }
  });
});

describe('withHealth', () => {
  test('calls pass through and are answered by the backend', async () => {
    const { storage, inner, events } = monitored();
    assert.equal(storage.kind, 'memory');
    assert.equal(storage.shared, false);
    await storage.set('records/a.example.com.json', '{}');
    assert.equal(await inner.get('records/a.example.com.json'), '{}');
    assert.equal(await storage.add('locks/a.example.com', 'me', 1000), true);
    assert.equal(await storage.compareAndExtend('locks/a.example.com', 'me', 1000), true);
    assert.equal(await storage.compareAndDelete('locks/a.example.com', 'me'), true);
    assert.deepEqual(await storage.list('records/'), ['records/a.example.com.json']);
    assert.equal(storage.location('a.example.com'), 'memory:a.example.com');
    assert.deepEqual(events, []);
    assert.equal(storage.health().up, true);
  });

  test('a store fault marks the store down once; the probe loop waits 1 s, doubling to 30 s, and brings it up once', async () => {
    const { clock, storage, control, events, messages } = monitored();
    const startedAt = new Date(clock.now()).toISOString();
    assert.deepEqual(storage.health(), { up: true, writable: true, freeBytes: null, lowSpace: false, lastError: null, since: startedAt });

    await clock.advance(5_000);
    const outage = new StorageTimeoutError('redis: get timed out after 2000 ms');
    control.fault = outage;
    await assert.rejects(storage.get('records/a.json'), (err) => err === outage, 'the error itself reaches the caller');
    await assert.rejects(storage.putCertificate({} as never), StorageTimeoutError);
    assert.deepEqual(events.map(([e]) => e), ['down'], "'down' once for the outage");
    const down = storage.health();
    assert.equal(down.up, false);
    assert.equal(down.lastError, 'redis: get timed out after 2000 ms');
    assert.equal(down.since, new Date(clock.now()).toISOString());
    assert.deepEqual(events[0][1], down);

    // The loop: 1 s, 2 s, 4 s, … 30 s, each followed by one probe.
    await clock.advance(999);
    assert.equal(control.probeWrites, 0, 'no probe before the first second');
    await clock.advance(1);
    assert.equal(control.probeWrites, 1);
    await clock.advance(2_000 + 4_000 + 8_000 + 16_000 + 30_000 + 30_000);
    assert.equal(control.probeWrites, 7);
    assert.deepEqual(clock.asked, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(clock.sleeping(), 1, 'one loop, not one per failure');
    assert.deepEqual(events.map(([e]) => e), ['down']);

    control.fault = null;
    await clock.advance(30_000);
    assert.deepEqual(events.map(([e]) => e), ['down', 'up'], "'up' once the probe succeeds");
    const up = storage.health();
    assert.equal(up.up, true);
    assert.equal(up.writable, true);
    assert.equal(up.lastError, null);
    assert.equal(up.since, new Date(clock.now()).toISOString());
    assert.equal(clock.sleeping(), 0, 'the loop ended');
    assert.deepEqual(await storage.list('health/'), [], 'probe keys are deleted');
    assert.ok(messages().includes('storage is failing; retrying until it works again'));
    assert.ok(messages().includes('storage works again'));

    // A second outage starts again at 1 s.
    control.fault = errnoError('EIO');
    await assert.rejects(storage.set('records/b.json', 'x'));
    assert.deepEqual(events.map(([e]) => e), ['down', 'up', 'down']);
    const asked = clock.asked.length;
    await settle();
    assert.equal(clock.asked[asked - 1], 1_000);
  });

  test('errors that are not store faults leave the health alone', async () => {
    const { storage, events } = monitored();
    await assert.rejects(storage.get('../etc/passwd'), InvalidKeyError);
    await assert.rejects(storage.getCertificate('not a host name'), { code: 'INVALID_HOSTNAME' });
    assert.deepEqual(events, []);
    assert.equal(storage.health().up, true);
  });

  test('a working read while down does not bring the store up: only a probe does', async () => {
    const { clock, storage, control } = monitored();
    control.fault = errnoError('ENOSPC');
    await assert.rejects(storage.set('records/a.json', 'x'));
    control.fault = null;
    control.writeFault = errnoError('ENOSPC'); // reads work again, writes do not
    assert.equal(await storage.get('records/a.json'), null);
    assert.equal(storage.health().up, false);
    await clock.advance(1_000);
    const h = storage.health();
    assert.equal(h.up, false);
    assert.equal(h.writable, false, 'the probe could not write');
    assert.match(h.lastError ?? '', /ENOSPC/);
    control.writeFault = null;
    await clock.advance(2_000);
    assert.equal(storage.health().up, true);
    assert.equal(storage.health().writable, true);
  });

  test('probe(): write, read back, delete; cached for 2 s; concurrent probes share one', async () => {
    const { clock, storage, control, inner } = monitored();
    const [a, b] = await Promise.all([storage.probe(), storage.probe()]);
    assert.deepEqual(a, b);
    assert.equal(control.probeWrites, 1);
    assert.equal(a.up, true);
    assert.equal(a.writable, true);
    await clock.advance(1_999);
    await storage.probe();
    assert.equal(control.probeWrites, 1, 'answered from the cache');
    await clock.advance(1);
    await storage.probe();
    assert.equal(control.probeWrites, 2);
    assert.deepEqual(await inner.list('health/'), []);
  });

  test('a failing probe marks the store down and starts the loop', async () => {
    const { clock, storage, control, events } = monitored();
    control.fault = new StorageError('consul: set failed: 500');
    const h = await storage.probe();
    assert.equal(h.up, false);
    assert.equal(h.writable, false);
    assert.equal(h.lastError, 'consul: set failed: 500');
    assert.deepEqual(events.map(([e]) => e), ['down']);
    assert.equal(clock.sleeping(), 1);
    control.fault = null;
    await clock.advance(1_000);
    assert.deepEqual(events.map(([e]) => e), ['down', 'up']);
  });

  test('a probe that reads back something else is a failure too', async () => {
    const { storage, inner, events } = monitored();
    const lying: Storage = { ...inner, get: async () => 'not what was written' };
    const { log } = capturedLog();
    const checked = withHealth(lying, { log });
    const h = await checked.probe();
    assert.equal(h.up, false);
    assert.equal(h.writable, true, 'the write itself went through');
    assert.match(h.lastError ?? '', /read back another value/);
    await checked.close();
    assert.deepEqual(events, []);
    await storage.close();
  });

  test('free space: reported by the probe, lowSpace under the threshold, logged when it changes', async () => {
    const { clock, storage, control, lines } = monitored({ minFreeBytes: 1_000_000 });
    control.free = 5_000_000;
    assert.deepEqual({ ...(await storage.probe()), since: '' }, { up: true, writable: true, freeBytes: 5_000_000, lowSpace: false, lastError: null, since: '' });
    control.free = 999_999;
    await clock.advance(2_000);
    let h = await storage.probe();
    assert.equal(h.freeBytes, 999_999);
    assert.equal(h.lowSpace, true);
    assert.equal(h.up, true, 'low space is not down');
    await clock.advance(2_000);
    await storage.probe();
    assert.equal(lines.filter((l) => l.msg === 'storage is low on space').length, 1, 'warned once');
    assert.equal(lines.find((l) => l.msg === 'storage is low on space')?.level, 40);
    control.free = 2_000_000;
    await clock.advance(2_000);
    h = await storage.probe();
    assert.equal(h.lowSpace, false);
    control.free = null; // statfs cannot say: unknown, not a fault
    await clock.advance(2_000);
    h = await storage.probe();
    assert.equal(h.freeBytes, null);
    assert.equal(h.lowSpace, false);
    assert.equal(h.up, true);
    assert.equal(DEFAULT_MIN_FREE_BYTES > 0, true);
  });

  test('close() stops the probe loop and closes the backend', async () => {
    const { clock, storage, control } = monitored();
    control.fault = new StorageError('down');
    await assert.rejects(storage.get('records/a.json'));
    assert.equal(clock.sleeping(), 1);
    await storage.close();
    assert.equal(control.closed, 1);
    assert.equal(clock.sleeping(), 0);
    await clock.advance(120_000);
    assert.equal(control.probeWrites, 0);
  });

  test('a listener that throws is logged and does not stop the others', async () => {
    const { storage, control, messages } = monitored();
    let second = 0;
    storage.on('down', () => {
      throw new Error('listener bug');
    });
    storage.on('down', () => second++);
    control.fault = new StorageError('down');
    await assert.rejects(storage.get('records/a.json'), StorageError);
    assert.equal(second, 1);
    assert.ok(messages().includes('a storage health listener failed'));
  });

  test('composes with withEncryption: free space survives, probe values are sealed and opened', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acmed-health-enc-'));
    try {
      const keyring = Keyring.parse(`k1 ${randomBytes(32).toString('base64')}`);
      const { log } = capturedLog();
      const storage = withHealth(withEncryption(createFileStorage({ path: dir }), keyring), { log });
      const h = await storage.probe();
      assert.equal(h.up, true);
      assert.equal(typeof h.freeBytes, 'number');
      assert.ok(h.freeBytes! > 0);
      assert.deepEqual(await storage.list('health/'), []);
      await storage.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('withHealth over file storage on a real tmpfs', () => {
  let mountPoint: string;
  let tmpfs: Tmpfs | undefined;

  before(async () => {
    mountPoint = await mkdtemp(join(tmpdir(), 'acmed-health-tmpfs-'));
    tmpfs = await mountTmpfs(mountPoint, 256);
  });
  after(async () => {
    if (!mountPoint) return;
    await tmpfs?.unmount();
    await rm(mountPoint, { recursive: true, force: true });
  });

  async function fillUp(): Promise<() => Promise<void>> {
    const filler = join(mountPoint, 'filler');
    const handle = await open(filler, 'w');
    try {
      for (;;) await handle.write(Buffer.alloc(64 * 1024, 1));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      await handle.close();
    }
    return () => rm(filler, { force: true });
  }

  test('a full disk: down, not writable, low on space; up again once space is freed', async () => {
    const clock = manualClock();
    const { log } = capturedLog();
    const storage = withHealth(createFileStorage({ path: join(mountPoint, 'full') }), {
      log, now: clock.now, sleep: clock.sleep, minFreeBytes: 64 * 1024,
    });
    const events: string[] = [];
    storage.on('down', () => events.push('down'));
    storage.on('up', () => events.push('up'));
    let h = await storage.probe();
    assert.equal(h.up, true);
    assert.ok(h.freeBytes! > 64 * 1024);
    assert.equal(h.lowSpace, false);

    const free = await fillUp();
    try {
      await assert.rejects(storage.set('account/url', 'https://ca.example/acct/1'), { code: 'ENOSPC' });
      assert.deepEqual(events, ['down']);
      await clock.advance(1_000);
      h = await storage.probe(); // the loop's probe, in flight on real file I/O
      assert.equal(h.up, false);
      assert.equal(h.writable, false);
      assert.equal(h.lowSpace, true);
      assert.equal(h.freeBytes, 0);
      assert.match(h.lastError ?? '', /ENOSPC/);
      assert.deepEqual(storage.health(), h);
    } finally {
      await free();
    }
    await clock.advance(2_000);
    h = await storage.probe();
    assert.deepEqual(events, ['down', 'up']);
    assert.equal(h.up, true);
    assert.equal(h.writable, true);
    assert.equal(h.lowSpace, false);
    assert.equal(h.freeBytes, (await statfs(mountPoint)).bavail * (await statfs(mountPoint)).bsize);
    await storage.close();
  });

  test('a read-only disk: the probe cannot write and says why', async () => {
    const clock = manualClock();
    const { log } = capturedLog();
    const storage = withHealth(createFileStorage({ path: join(mountPoint, 'ro') }), { log, now: clock.now, sleep: clock.sleep });
    await storage.set('account/url', 'https://ca.example/acct/1');
    await tmpfs!.readOnly();
    try {
      const h = await storage.probe();
      assert.equal(h.up, false);
      assert.equal(h.writable, false);
      assert.match(h.lastError ?? '', /EROFS/);
      assert.equal(await storage.get('account/url'), 'https://ca.example/acct/1', 'reads still work');
    } finally {
      await tmpfs!.writable();
    }
    await clock.advance(1_000);
    assert.equal((await storage.probe()).up, true);
    await storage.close();
  });
});
