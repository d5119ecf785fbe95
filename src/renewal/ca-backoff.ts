/**
 * Backoff for the CA itself. A network error, a timeout or a 5xx says the CA
 * is in trouble, not the host being ordered: such faults put the CA into an
 * exponential backoff of its own (2 s doubling to 1 minute: a probe
 * is one GET of the directory, cheap enough to ask that often), visible in
 * /healthz, `acmed list` and metrics, and hosts keep no failure for them.
 * When the wait ends, one order goes first as a probe; the others wait for
 * its answer instead of all hitting a CA that may still be down.
 */
import { AcmedError, retryAfterSeconds } from '../errors.js';
import { EventEmitter } from 'node:events';

export interface CaState {
  up: boolean;
  failures: number;
  /** ISO time before which no order talks to the CA; null when up. */
  until: string | null;
  lastError: string | null;
  /** ISO time of the last change between up and down. */
  since: string;
}

export class CaUnavailableError extends AcmedError {
  override readonly code = 'CA_UNAVAILABLE';
  override get status(): number {
    return 503;
  }
  override get kind(): string {
    return 'ca_unavailable';
  }

  override apiBody(): Record<string, unknown> {
    return { ...super.apiBody(), ca: this.state };
  }

  override headers(): Record<string, string> {
    return { 'retry-after': String(retryAfterSeconds(this.state.until)) };
  }

  constructor(readonly state: CaState) {
    super(`the CA is not answering (${state.lastError ?? 'unknown error'}); acmed tries again by itself after ${state.until}`);
  }
}

export interface CaBackoffOptions {
  now?: () => number;
  baseMs?: number;
  maxMs?: number;
}

export class CaBackoff extends EventEmitter<{ down: [CaState]; up: [CaState] }> {
  private failures = 0;
  private until = 0;
  private lastError: string | null = null;
  private since: number;
  private probe?: Promise<void>;
  private endProbe?: () => void;
  private readonly now: () => number;

  constructor(private readonly opts: CaBackoffOptions = {}) {
    super();
    this.now = opts.now ?? Date.now;
    this.since = this.now();
  }

  state(): CaState {
    const up = this.failures === 0;
    return {
      up,
      failures: this.failures,
      until: up ? null : new Date(this.until).toISOString(),
      lastError: this.lastError,
      since: new Date(this.since).toISOString(),
    };
  }

  /** True while orders must not talk to the CA. */
  get backedOff(): boolean {
    return this.failures > 0 && this.now() < this.until;
  }

  /**
   * Lets an order through to the CA, or throws CaUnavailableError while the
   * CA is backed off. After the wait, the first caller becomes the probe and
   * the others wait for its verdict (fault or success).
   */
  async admit(): Promise<{ probe: boolean }> {
    for (;;) {
      if (this.failures === 0) return { probe: false };
      if (this.now() < this.until) throw new CaUnavailableError(this.state());
      if (!this.probe) {
        this.probe = new Promise<void>((resolve) => {
          this.endProbe = resolve;
        });
        return { probe: true };
      }
      await this.probe;
    }
  }

  /** The CA answered (any answer that is not a CA fault). */
  success(): void {
    const wasDown = this.failures > 0;
    this.failures = 0;
    this.until = 0;
    this.finishProbe();
    if (wasDown) {
      this.since = this.now();
      this.emit('up', this.state());
    }
  }

  /** The CA failed (unreachable, timed out, 5xx): back off, doubling. */
  fault(error: Error): CaState {
    const base = this.opts.baseMs ?? 2_000;
    const max = this.opts.maxMs ?? 60_000;
    const wasUp = this.failures === 0;
    this.failures++;
    this.until = this.now() + Math.min(base * 2 ** Math.min(this.failures - 1, 30), max);
    this.lastError = error.message;
    this.finishProbe();
    const state = this.state();
    if (wasUp) {
      this.since = this.now();
      this.emit('down', state);
    }
    return state;
  }

  /** The probe (admit() said probe: true) ended without talking to the CA: let the next caller probe. */
  release(): void {
    this.finishProbe();
  }

  private finishProbe(): void {
    const end = this.endProbe;
    this.probe = undefined;
    this.endProbe = undefined;
    end?.();
  }
}
