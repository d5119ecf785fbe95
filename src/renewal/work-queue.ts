/**
 * The one bounded queue every caller hands certificate jobs to (scheduler,
 * CLI, admin API, reconciliation): at most `width` jobs run at once, so
 * 10,000 certificates due together do not open 10,000 orders, and a job for
 * a name already queued or running is joined, not repeated.
 */

export class WorkQueue<T> {
  private readonly waiting: { name: string; run: () => Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void }[] = [];
  private readonly jobs = new Map<string, Promise<T>>();
  private readonly active = new Set<string>();

  constructor(private width: number) {}

  /** Runs `run` for name when a slot is free; a pending or running job for name is returned instead. */
  submit(name: string, run: () => Promise<T>): Promise<T> {
    const existing = this.jobs.get(name);
    if (existing) return existing;
    const job = new Promise<T>((resolve, reject) => {
      // The name is free again before its callers hear the result, so one of them can queue it anew.
      const settle = (finish: () => void) => {
        if (this.jobs.get(name) === job) this.jobs.delete(name);
        finish();
      };
      this.waiting.push({ name, run, resolve: (v) => settle(() => resolve(v)), reject: (e) => settle(() => reject(e)) });
    });
    this.jobs.set(name, job);
    this.pump();
    return job;
  }

  /** Changes the width (config reload); extra slots start waiting jobs at once. */
  resize(width: number): void {
    this.width = width;
    this.pump();
  }

  /** Names queued or running. */
  get pending(): string[] {
    return [...this.jobs.keys()];
  }

  /** Names running now. */
  get running(): string[] {
    return [...this.active];
  }

  has(name: string): boolean {
    return this.jobs.has(name);
  }

  /** Rejects every job not started yet (shutdown). */
  cancelWaiting(reason: (name: string) => Error): void {
    for (const job of this.waiting.splice(0)) job.reject(reason(job.name));
  }

  /** Resolves once every queued and running job has settled. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.jobs.values()]);
  }

  private pump(): void {
    while (this.active.size < this.width && this.waiting.length > 0) {
      const job = this.waiting.shift()!;
      this.active.add(job.name);
      let result: Promise<T>;
      try {
        result = job.run();
      } catch (err) {
        result = Promise.reject(err);
      }
      result.then((value) => {
        this.active.delete(job.name);
        job.resolve(value);
        this.pump();
      }, (err: unknown) => {
        this.active.delete(job.name);
        job.reject(err);
        this.pump();
      });
    }
  }
}
