// Locks that cannot wedge: the heartbeat gives a lock up (HeldLock.signal)
// when it cannot extend it, assertHeld() fences writes, and a restarted
// daemon releases the locks its dead predecessor left. Time is a manual
// clock shared by memory storage and the lock, so nothing here sleeps.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { StorageError } from '../../src/storage/errors.js';
import { isProcessAlive, newOwnerToken, parseOwnerToken } from '../../src/storage/lock-owner.js';
import { type HeldLock, LockLostError, LockTimeoutError, releaseStaleOwnLocks, withLock } from '../../src/storage/lock.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/storage.js';
import { manualClock, settle } from '../harness/manual-clock.js';


/** Memory storage whose compareAndExtend can be made to fail or hang, counting calls. */
function flakyStorage(now: () => number) {
  const inner = createMemoryStorage({ now });
  const control = { mode: 'ok' as 'ok' | 'fail' | 'hang', extends: 0 };
  const storage: Storage = {
    ...inner,
    async compareAndExtend(key, value, ttlMs) {
      control.extends++;
      if (control.mode === 'fail') throw new StorageError('store: compareAndExtend failed: connection refused');
      if (control.mode === 'hang') return new Promise<boolean>(() => {});
      return inner.compareAndExtend(key, value, ttlMs);
    },
  };
  return { storage, control };
}

const KEY = 'locks/www.example.com';
const TTL = 30_000;

/** Starts withLock and returns the held lock, and a way to let fn finish. */
async function hold(storage: Storage, clock: ReturnType<typeof manualClock>) {
  let lock: HeldLock | undefined;
  let finish!: (value: string) => void;
  const result = withLock(storage, KEY, (held) => {
    lock = held;
    return new Promise<string>((resolve) => {
      finish = resolve;
    });
  }, { ttlMs: TTL, now: clock.now, sleep: clock.sleep });
  await settle();
  assert.ok(lock, 'fn was called with the lock');
  return { lock, finish, result };
}

describe('withLock heartbeat', () => {
  test('extends the lock every ttl/3 while fn runs, and releases it after', async () => {
    const clock = manualClock();
    const { storage, control } = flakyStorage(clock.now);
    const { lock, finish, result } = await hold(storage, clock);
    assert.equal(lock.key, KEY);
    await clock.advance(TTL * 5);
    assert.equal(control.extends, 15);
    assert.equal(lock.signal.aborted, false);
    await lock.assertHeld();
    finish('done');
    assert.equal(await result, 'done');
    assert.equal(await storage.get(KEY), null, 'released');
    await clock.advance(TTL);
    assert.equal(control.extends, 15, 'the heartbeat stopped with fn');
    assert.equal(clock.sleeping(), 0);
  });

  test('a heartbeat that keeps failing aborts the signal once the TTL has run out, not before', async () => {
    const clock = manualClock();
    const { storage, control } = flakyStorage(clock.now);
    const { lock, finish, result } = await hold(storage, clock);
    control.mode = 'fail';
    await clock.advance(TTL - 1);
    assert.equal(control.extends, 2, 'tried at ttl/3 and 2·ttl/3');
    assert.equal(lock.signal.aborted, false, 'still within the TTL');
    await clock.advance(1);
    assert.equal(lock.signal.aborted, true);
    const reason = lock.signal.reason as LockLostError;
    assert.ok(reason instanceof LockLostError);
    assert.equal(reason.code, 'LOCK_LOST');
    assert.match(reason.message, /connection refused/);
    await assert.rejects(lock.assertHeld(), LockLostError);
    await clock.advance(TTL * 3);
    assert.equal(control.extends, 2, 'no more attempts after giving up');
    finish('fn decides what its work is worth');
    assert.equal(await result, 'fn decides what its work is worth');
  });

  test('a store that hangs on the extension loses the lock at the TTL', async () => {
    const clock = manualClock();
    const { storage, control } = flakyStorage(clock.now);
    const { lock, finish, result } = await hold(storage, clock);
    control.mode = 'hang';
    await clock.advance(TTL - 1);
    assert.equal(control.extends, 1, 'one attempt, still hanging');
    assert.equal(lock.signal.aborted, false);
    await clock.advance(1);
    assert.ok(lock.signal.reason instanceof LockLostError);
    assert.match((lock.signal.reason as Error).message, /did not answer/);
    finish('x');
    await result;
  });

  test('a failure the store recovers from within the TTL keeps the lock', async () => {
    const clock = manualClock();
    const { storage, control } = flakyStorage(clock.now);
    const { lock, finish, result } = await hold(storage, clock);
    control.mode = 'fail';
    await clock.advance(TTL / 3); // one failed extension
    assert.equal(control.extends, 1);
    control.mode = 'ok';
    await clock.advance(TTL * 4);
    assert.equal(control.extends, 13);
    assert.equal(lock.signal.aborted, false);
    await lock.assertHeld();
    finish('ok');
    assert.equal(await result, 'ok');
  });

  test('another holder taking the lock aborts the signal at the next heartbeat, and its lock survives our release', async () => {
    const clock = manualClock();
    const { storage } = flakyStorage(clock.now);
    const { lock, finish, result } = await hold(storage, clock);
    // Someone removes our lock (an operator, a confused peer) and another instance takes it.
    await storage.delete(KEY);
    assert.equal(await storage.add(KEY, 'intruder', TTL), true);
    await clock.advance(TTL / 3);
    assert.ok(lock.signal.aborted);
    assert.match((lock.signal.reason as Error).message, /taken by another holder/);
    await assert.rejects(lock.assertHeld(), { code: 'LOCK_LOST' });
    finish('x');
    await result;
    assert.equal(await storage.get(KEY), 'intruder', 'release is compare-and-delete');
  });

  test('a holder paused past its TTL learns at assertHeld that its lock was taken over', async () => {
    const clock = manualClock();
    const { storage } = flakyStorage(clock.now);
    const { lock, finish, result } = await hold(storage, clock);
    clock.jump(TTL); // paused: no heartbeat ran, and the lock expired in the store
    assert.equal(await storage.add(KEY, 'next-holder', TTL), true);
    assert.equal(lock.signal.aborted, false, 'nothing has run yet to notice');
    await assert.rejects(lock.assertHeld(), (err: LockLostError) => {
      assert.ok(err instanceof LockLostError);
      return true;
    });
    assert.ok(lock.signal.aborted, 'assertHeld aborts the signal too');
    finish('x');
    await result;
    assert.equal(await storage.get(KEY), 'next-holder');
  });

  test('assertHeld passes a store error through: it says nothing about who holds the lock', async () => {
    const clock = manualClock();
    const { storage: base } = flakyStorage(clock.now);
    let storeDown = false;
    const storage: Storage = {
      ...base,
      async get(key) {
        if (storeDown) throw new StorageError('store: get failed: connection refused');
        return base.get(key);
      },
    };
    const { lock, finish, result } = await hold(storage, clock);
    storeDown = true;
    await assert.rejects(lock.assertHeld(), StorageError);
    assert.equal(lock.signal.aborted, false);
    storeDown = false;
    await lock.assertHeld();
    finish('x');
    await result;
  });

  test('waiting for a held lock gives up after waitMs on the injected clock', async () => {
    const clock = manualClock();
    const storage = createMemoryStorage({ now: clock.now });
    assert.equal(await storage.add(KEY, 'someone', 10 * TTL), true);
    let ran = false;
    const waiting = withLock(storage, KEY, async () => {
      ran = true;
    }, { ttlMs: TTL, waitMs: 1_000, pollMs: 250, now: clock.now, sleep: clock.sleep });
    const outcome = waiting.then(() => 'resolved', (err: unknown) => err);
    await clock.advance(999);
    assert.equal(clock.sleeping(), 1, 'still polling');
    await clock.advance(1);
    const err = await outcome;
    assert.ok(err instanceof LockTimeoutError, String(err));
    assert.equal(ran, false);
  });

  test('the lock value is an owner token <host>/<pid>/<hex> that names this process', async () => {
    const clock = manualClock();
    const storage = createMemoryStorage({ now: clock.now });
    let seen: string | null = null;
    await withLock(storage, KEY, async () => {
      seen = await storage.get(KEY);
    }, { ttlMs: TTL, now: clock.now, sleep: clock.sleep });
    assert.ok(seen);
    assert.match(seen, /^[^/]+\/\d+\/[0-9a-f]{32}$/);
    assert.deepEqual(parseOwnerToken(seen)?.host, hostname());
    assert.deepEqual(parseOwnerToken(seen)?.pid, process.pid);
    assert.notEqual(newOwnerToken(), newOwnerToken());
  });
});

describe('releaseStaleOwnLocks', () => {
  const HOST = hostname();
  const DEAD = 4_000_001;
  const ALIVE = 4_000_002;
  const isAlive = (pid: number) => pid === ALIVE;

  test('releases this host\'s locks of dead pids and of our own pid made by an earlier process; leaves the rest', async () => {
    const storage = createMemoryStorage();
    const locks: Record<string, string> = {
      'locks/dead.example.com': `${HOST}/${DEAD}/0123abcd`,
      'locks/alive.example.com': `${HOST}/${ALIVE}/0123abcd`,
      'locks/other-host.example.com': `other-host.internal/${DEAD}/0123abcd`,
      'locks/predecessor-pid1.example.com': `${HOST}/${process.pid}/0123abcd`, // a container restart keeps the pid
      'locks/legacy.example.com': '5f1e0c2b9a7d4e3f8a6b5c4d3e2f1a0b', // an older acmed's plain token
      'locks/account': `${HOST}/${DEAD}/feedface`,
    };
    for (const [key, value] of Object.entries(locks)) assert.ok(await storage.add(key, value, 60_000));
    await storage.set('records/dead.example.com.json', `${HOST}/${DEAD}/0123abcd`); // not a lock

    let ours: string | null = null;
    const released = await withLock(storage, 'locks/ours.example.com', async () => {
      ours = await storage.get('locks/ours.example.com');
      return releaseStaleOwnLocks(storage, { isAlive });
    });

    assert.deepEqual(released.sort(), ['locks/account', 'locks/dead.example.com', 'locks/predecessor-pid1.example.com']);
    for (const key of released) assert.equal(await storage.get(key), null, key);
    for (const key of ['locks/alive.example.com', 'locks/other-host.example.com', 'locks/legacy.example.com']) {
      assert.equal(await storage.get(key), locks[key], key);
    }
    assert.ok(ours, 'our own live lock was held meanwhile');
    assert.equal(await storage.get('records/dead.example.com.json'), `${HOST}/${DEAD}/0123abcd`);
  });

  test('host and pid can be given: a lock taken over between the read and the delete stays', async () => {
    const inner = createMemoryStorage();
    await inner.add('locks/a.example.com', 'box-7/10/aa', 60_000);
    await inner.add('locks/b.example.com', 'box-7/11/bb', 60_000);
    const storage: Storage = {
      ...inner,
      async get(key) {
        const value = await inner.get(key);
        if (key === 'locks/b.example.com') {
          // the dead holder's lock expires and a new holder takes it right after we read it
          await inner.delete(key);
          await inner.add(key, 'box-7/12/cc', 60_000);
        }
        return value;
      },
    };
    const released = await releaseStaleOwnLocks(storage, { host: 'box-7', pid: 99, isAlive: () => false });
    assert.deepEqual(released, ['locks/a.example.com']);
    assert.equal(await inner.get('locks/b.example.com'), 'box-7/12/cc');
  });

  test('isProcessAlive: this process is, an exited child is not', () => {
    assert.equal(isProcessAlive(process.pid), true);
    const child = spawnSync('true');
    assert.equal(child.status, 0);
    assert.equal(isProcessAlive(child.pid!), false);
    assert.equal(isProcessAlive(0), false, 'kill(0) would ask about our process group');
  });
});
