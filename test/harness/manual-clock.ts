// Test clocks moved by hand, so tests of timing code never sleep.
//
// manualClock: a clock and an abortable sleep, for code that takes
// `now`/`sleep` (locks, the storage health probe). fakeTimers: a clock with
// setTimeout/clearTimeout, for code that takes Timers (the scheduler).
import type { Timers } from '../../src/renewal/due-queue.js';

/** Lets every pending promise chain run to its next real wait. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A clock moved by hand; sleeps end when it passes their time. Records every sleep asked for. */
export function manualClock(start = 1_700_000_000_000) {
  let now = start;
  const sleepers = new Set<{ at: number; wake: () => void }>();
  const asked: number[] = [];
  return {
    asked,
    now: () => now,
    sleep(ms: number, signal?: AbortSignal): Promise<void> {
      asked.push(ms);
      return new Promise((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const sleeper = { at: now + ms, wake: resolve };
        sleepers.add(sleeper);
        signal?.addEventListener('abort', () => {
          sleepers.delete(sleeper);
          reject(signal.reason);
        }, { once: true });
      });
    },
    /** Moves time on by ms, waking sleepers in order and letting each run before the next. */
    async advance(ms: number): Promise<void> {
      const until = now + ms;
      for (;;) {
        await settle();
        const due = [...sleepers].filter((s) => s.at <= until).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        sleepers.delete(due);
        now = Math.max(now, due.at);
        due.wake();
      }
      now = until;
      await settle();
    },
    /** Time passes and no sleeper wakes: a process paused (GC, SIGSTOP, a stuck event loop). */
    jump(ms: number): void {
      now += ms;
    },
    sleeping: () => sleepers.size,
  };
}

/** Timers whose clock moves only by advance(), firing due callbacks in order on the way. */
export function fakeTimers(start = 1_000_000) {
  let now = start;
  const pending = new Map<number, { at: number; fn: () => void }>();
  let nextId = 1;
  const timers: Timers = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = nextId++;
      pending.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout: (id) => pending.delete(id as number),
  };
  return {
    timers,
    /** When the armed timers fire, earliest first. */
    armed: () => [...pending.values()].map((t) => t.at).sort((a, b) => a - b),
    /** Moves the clock to `to`, firing timers due on the way, in order. */
    advance(to: number) {
      for (;;) {
        const due = [...pending.entries()].filter(([, t]) => t.at <= to).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        pending.delete(due[0]);
        now = Math.max(now, due[1].at);
        due[1].fn();
      }
      now = to;
    },
  };
}
