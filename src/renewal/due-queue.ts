/**
 * The scheduler's heart: a priority queue of (name, due time) with one timer
 * for the earliest entry, so 100,000 certificates cost one timer and a
 * reschedule is O(log n), not a scan. Entries are replaced lazily: a name
 * scheduled again gets a new heap entry and the old one is skipped when it
 * surfaces.
 *
 * The clock and the timer are injected, so tests move time instead of
 * sleeping.
 */

export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: Date.now,
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** setTimeout's longest delay; a later wake re-arms on the way. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Entry {
  at: number;
  name: string;
}

export class DueQueue {
  private heap: Entry[] = [];
  private readonly due = new Map<string, number>();
  private timer: unknown;
  private armedAt: number | null = null;
  private stopped = false;

  constructor(private readonly onDue: (name: string) => void, private readonly timers: Timers = realTimers) {}

  /** (Re)schedules name for `at`; a time in the past fires on the next tick. */
  schedule(name: string, at: Date): void {
    const t = at.getTime();
    if (Number.isNaN(t) || this.due.get(name) === t) return;
    this.due.set(name, t);
    this.push({ at: t, name });
    this.arm();
  }

  remove(name: string): void {
    this.due.delete(name); // the heap entry is skipped when it surfaces
  }

  /** When name is due, if scheduled. */
  dueAt(name: string): Date | undefined {
    const t = this.due.get(name);
    return t === undefined ? undefined : new Date(t);
  }

  /** The earliest scheduled time, if any. */
  next(): { name: string; at: Date } | undefined {
    this.dropStale();
    const top = this.heap[0];
    return top ? { name: top.name, at: new Date(top.at) } : undefined;
  }

  /** How many entries are due at or before `at`. O(n); for health checks, not the hot path. */
  countDueBy(at: number): number {
    let n = 0;
    for (const t of this.due.values()) if (t <= at) n++;
    return n;
  }

  get size(): number {
    return this.due.size;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Fires every entry due by now, then re-arms for the next. Exposed so tests can drive it. */
  fire(): void {
    this.timer = undefined;
    this.armedAt = null;
    const now = this.timers.now();
    for (;;) {
      this.dropStale();
      const top = this.heap[0];
      if (!top || top.at > now) break;
      this.pop();
      this.due.delete(top.name);
      this.onDue(top.name);
    }
    this.arm();
  }

  private arm(): void {
    if (this.stopped) return;
    this.dropStale();
    const top = this.heap[0];
    if (!top) return;
    if (this.armedAt !== null && this.armedAt <= top.at) return; // already set early enough
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    const delay = Math.min(Math.max(top.at - this.timers.now(), 0), MAX_TIMER_MS);
    this.armedAt = top.at;
    this.timer = this.timers.setTimeout(() => this.fire(), delay);
  }

  private dropStale(): void {
    while (this.heap.length > 0 && this.due.get(this.heap[0].name) !== this.heap[0].at) this.pop();
  }

  private push(entry: Entry): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent].at <= h[i].at) break;
      [h[parent], h[i]] = [h[i], h[parent]];
      i = parent;
    }
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l].at < h[m].at) m = l;
        if (r < h.length && h[r].at < h[m].at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}
